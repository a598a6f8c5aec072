from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from episodes.curation import actions as curation

from episodes.validation import jobs
from episodes.models import Bug, Repository


class Command(BaseCommand):
    help = ("Rerun settled bugs' verifiers until each is stable at a stricter flake-rate target (or turns out "
            "flaky): for named bugs or a filter, here with a progress bar or queued on 'verify'.")

    def add_arguments(self, parser):
        parser.add_argument("bug_ids", nargs="*", type=int)
        parser.add_argument("--target", type=float, required=True, help="flake-rate bound to reach, e.g. 0.01")
        parser.add_argument("--repo", help="only bugs of this repository")
        parser.add_argument("--status", action="append", choices=["valid", "approved"],
                            help="only bugs with this status (repeatable; default: valid and approved)")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--enqueue", action="store_true", help="queue on 'verify' instead of running here")

    def handle(self, bug_ids, target, repo, status, seed, enqueue, **options):
        if not 0 < target < 1:
            raise CommandError("--target is a flake rate between 0 and 1, e.g. 0.01")
        if repo and not Repository.objects.filter(name=repo).exists():
            raise CommandError(f"no repository named {repo!r}")
        if bug_ids:
            named = list(Bug.objects.filter(pk__in=bug_ids).order_by("id"))
            unsettled = [b.pk for b in named if b.status not in ("valid", "approved")]
            if unsettled:  # a flaky verifier already disagreed: more runs cannot make it stable
                raise CommandError(f"only valid or approved bugs can be stabilized: {unsettled}")
        candidates = curation.stabilize_candidates({"repository": repo} if repo else {}, target)
        if bug_ids:
            candidates = candidates.filter(pk__in=bug_ids)
        if status:
            candidates = candidates.filter(status__in=status)
        bugs = list(candidates.order_by("id"))
        if enqueue:
            for bug in bugs:
                jobs.enqueue_stabilize(bug, target)
            self.stdout.write(f"{len(bugs)} bug(s) queued on 'verify' for < {target:.1%}")
            return
        counts: dict[str, int] = {}
        for bug in tqdm(bugs, desc=f"stabilizing at < {target:.1%}", unit="bug", file=self.stderr):
            jobs.stabilize_bug(bug.pk, target, seed=seed)
            bug.refresh_from_db()
            outcome = "stable" if bug.stable_at(target) else bug.status
            counts[outcome] = counts.get(outcome, 0) + 1
            self.stdout.write(f"bug {bug.pk}: {outcome} — {bug.flakiness_summary}")
        self.stdout.write(f"summary ({settings.BUGFORGE_VALIDATION_WORKERS} worker(s)): "
                          + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing to do"))
