"""Request hygiene shared by every view."""
from __future__ import annotations

from django.http import HttpResponseBadRequest


class RejectNulBytes:
    """A NUL byte is never valid input here (PostgreSQL text cannot even hold one): any query
    parameter, form field or path carrying one gets a 400 before a view sees it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or any("\x00" in key or "\x00" in value for part in (request.GET, request.POST)
                                         for key, values in part.lists() for value in values):
            return HttpResponseBadRequest("a NUL byte in the request", content_type="text/plain")
        return self.get_response(request)
