"""Access rules: every page needs a login (LoginRequiredMiddleware); changes need staff."""
from functools import wraps

from django.core.exceptions import PermissionDenied
from django.views.decorators.http import require_POST


def staff_required(view):
    """A state-changing view: POST only, staff only (403 otherwise, not a login redirect,
    so a logged-in reviewer without rights sees why nothing happened)."""

    @require_POST
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("Only staff can change BugForge data.")
        return view(request, *args, **kwargs)

    wrapper.changes_state = True  # the URL-conf walk in tests/test_access.py relies on this
    return wrapper
