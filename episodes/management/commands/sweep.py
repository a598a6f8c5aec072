from django.core.management.base import BaseCommand

from episodes.models import Bug, Episode, Repository


class Command(BaseCommand):
    help = (
        "Reset bugs stuck in 'validating', mark repositories whose preparation died broken, and fail episodes and training runs stuck in 'running' "
        "whose job died (worker killed, job lost or silent)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--stale-after", type=int, default=None, help="seconds without a heartbeat")

    def handle(self, stale_after, **options):
        swept = Bug.objects.sweep_stale(stale_after)
        for pk, why in swept:
            self.stdout.write(f"bug {pk}: reset to candidate ({why})")
        self.stdout.write(f"{len(swept)} bug(s) reset")
        for pk, why in Repository.objects.sweep_stale():
            self.stdout.write(f"repository {pk}: broken ({why})")
        failed = Episode.objects.sweep_stale(stale_after)
        for pk, why in failed:
            self.stdout.write(f"episode {pk}: failed ({why})")
        self.stdout.write(f"{len(failed)} episode(s) failed")
        from training.models import TrainingRun

        runs = TrainingRun.objects.sweep_stale()
        for pk, why in runs:
            self.stdout.write(f"training run {pk}: failed ({why})")
        self.stdout.write(f"{len(runs)} training run(s) failed")
