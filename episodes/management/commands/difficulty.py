from django.core.management.base import BaseCommand, CommandError

from episodes.curation import difficulty
from episodes.models import Bug


class Command(BaseCommand):
    help = ("Record graded episodes and finished evaluations not yet recorded, then recompute every bug's "
            "measured solve rate from its attempts; --bug N prints it per solver.")

    def add_arguments(self, parser):
        parser.add_argument("--bug", type=int, help="print this bug's estimate, overall and per solver")

    def handle(self, bug=None, **o):
        if bug is not None:
            b = Bug.objects.filter(pk=bug).first()
            if b is None:
                raise CommandError(f"no bug {bug}")
            difficulty.refresh([b.pk])
            b.refresh_from_db()
            overall = difficulty.estimate(b.solve_successes, b.solve_attempts)
            self.stdout.write(f"bug {b.pk}: {difficulty.fmt(overall)}")
            for solver, e in difficulty.per_solver(b.pk).items():
                self.stdout.write(f"  {solver}: {difficulty.fmt(e)}")
            return
        new = difficulty.backfill()
        ids = list(Bug.objects.values_list("pk", flat=True))
        difficulty.refresh(ids)
        measured = Bug.objects.filter(solve_attempts__gt=0).count()
        self.stdout.write(f"{new} attempts recorded that were not yet; "
                          f"recomputed {len(ids)} bugs: {measured} measured, {len(ids) - measured} unmeasured")
