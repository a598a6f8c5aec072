"""Run the recording gateway (uvicorn) as a service: ``manage.py gateway --port 8001``.

Agents are then given ``BUGFORGE_GATEWAY_URL`` (set it for the workers) instead of each solve
job starting a private gateway. SIGTERM/SIGINT stop it gracefully: calls in flight finish and
are recorded (up to 10 s)."""
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the recording gateway (OpenAI Chat/Responses and Anthropic Messages) with uvicorn."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8001, help="TCP port (default 8001)")
        parser.add_argument("--uds", default=None, help="listen on this unix socket path instead (mode 0666)")
        parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])

    def handle(self, *args, host, port, uds, log_level, **options):
        import uvicorn

        from episodes.solving.gateway.server import build_app, uvicorn_config

        kw = {"uds": uds} if uds else {"host": host, "port": port}
        server = uvicorn.Server(uvicorn_config(build_app(), log_level=log_level, **kw))
        server.run()
        if uds:
            import contextlib
            import os

            with contextlib.suppress(FileNotFoundError):
                os.unlink(uds)
