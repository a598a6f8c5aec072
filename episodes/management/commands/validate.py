from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from episodes.validation import jobs
from episodes.models import Bug, Repository


class Command(BaseCommand):
    help = "Validate bugs in the sandbox (same engine as the verify queue), with a progress bar."

    def add_arguments(self, parser):
        parser.add_argument("bug_ids", nargs="*", type=int)
        parser.add_argument("--repo", help="every candidate bug of this repository")
        parser.add_argument("--all", action="store_true", help="every candidate bug")
        parser.add_argument("--flake-target", type=float, default=None,
                            help="rerun until the flake rate's 95%% bound is below this (default: BUGFORGE_FLAKE_TARGET)")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--enqueue", action="store_true", help="queue on 'verify' instead of running here")

    def handle(self, bug_ids, repo, all, flake_target, seed, enqueue, **options):
        bugs = Bug.objects.all()
        if bug_ids:
            bugs = bugs.filter(pk__in=bug_ids)
        elif repo:
            if not Repository.objects.filter(name=repo).exists():
                raise CommandError(f"no repository named {repo!r}")
            bugs = bugs.filter(repository__name=repo, status=Bug.Status.CANDIDATE)
        elif all:
            bugs = bugs.filter(status=Bug.Status.CANDIDATE)
        else:
            raise CommandError("name bug ids, --repo NAME or --all")
        bugs = list(bugs.order_by("id"))
        if bug_ids and len(bugs) != len(set(bug_ids)):
            missing = sorted(set(bug_ids) - {b.pk for b in bugs})
            raise CommandError(f"no such bug(s): {missing}")
        if enqueue:
            for bug in bugs:
                jobs.enqueue_validation(bug)
            self.stdout.write(f"{len(bugs)} bug(s) queued on 'verify'")
            return
        Bug.objects.sweep_stale()
        verdicts = {}
        for bug in tqdm(bugs, desc="validating", unit="bug", file=self.stderr):
            try:
                status = jobs.validate_bug(bug.pk, target=flake_target, seed=seed)
            except Exception as exc:
                status = "error"
                self.stderr.write(f"bug {bug.pk}: {type(exc).__name__}: {exc}")
            bug.refresh_from_db()
            verdicts[status] = verdicts.get(status, 0) + 1
            detail = bug.invalid_reason or bug.flakiness_summary
            self.stdout.write(f"bug {bug.pk}: {status} — {detail}")
        self.stdout.write("summary: " + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())))
