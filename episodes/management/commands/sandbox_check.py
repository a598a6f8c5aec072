from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from episodes.sandboxes import probe_reports


class Command(BaseCommand):
    help = "Probe the sandbox backends this host supports and say which one is configured."

    def handle(self, **options):
        selected_ok = False
        for report in probe_reports():
            mark = "✓" if report.available else "✗"
            chosen = " (configured)" if report.backend == settings.BUGFORGE_SANDBOX else ""
            self.stdout.write(f"{mark} {report.backend}{chosen}: {report.detail}")
            for key, value in sorted(report.features.items()):
                self.stdout.write(f"    {key}: {value}")
            selected_ok |= report.available and report.backend == settings.BUGFORGE_SANDBOX
        if not selected_ok:
            raise CommandError(f"the configured backend {settings.BUGFORGE_SANDBOX!r} is not usable on this host")
