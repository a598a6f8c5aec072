from django.core.management.base import BaseCommand, CommandError

from training.runs import request_cancel
from training.models import TrainingRun


class Command(BaseCommand):
    help = "Cancel a training run: a queued run at once, a running one at the end of its next step."

    def add_arguments(self, parser):
        parser.add_argument("run_id", type=int)

    def handle(self, run_id, **options):
        try:
            run = TrainingRun.objects.get(pk=run_id)
        except TrainingRun.DoesNotExist:
            raise CommandError(f"no training run {run_id}")
        if run.is_finished:
            raise CommandError(f"run {run_id} is already {run.status}")
        request_cancel(run)
        run.refresh_from_db()
        self.stdout.write(f"run {run_id}: cancel requested ({run.status})")
