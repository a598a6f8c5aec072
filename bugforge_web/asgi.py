"""ASGI entry point: the site (Django) and the recording gateway in one application.

``/v1/...`` and ``/t/<token>/v1/...`` go to the gateway (episodes/solving/gateway), everything else to
Django, so one ASGI server can serve both:

    uvicorn bugforge_web.asgi:application --host 0.0.0.0 --port 8000

The recommended deployment keeps them apart (README, "Recording gateway"): gunicorn
(``bugforge_web.wsgi``) for the site and ``manage.py gateway`` (uvicorn) for the gateway.
"""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bugforge_web.settings")
django_application = get_asgi_application()  # sets Django up before the gateway is imported

from episodes.solving.gateway.server import build_app  # noqa: E402

gateway_application = build_app()
GATEWAY_PREFIXES = ("/v1/", "/t/")


async def application(scope, receive, send):
    if scope["type"] == "lifespan":  # Django has no lifespan; the gateway opens/closes its pool
        return await gateway_application(scope, receive, send)
    if scope["type"] == "http" and scope["path"].startswith(GATEWAY_PREFIXES):
        return await gateway_application(scope, receive, send)
    return await django_application(scope, receive, send)
