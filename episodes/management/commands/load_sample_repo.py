from django.conf import settings
from django.core.management.base import BaseCommand

from episodes.engine.repos.samples import SAMPLE_BUGS, build_sample_git_repo, sample_patch
from episodes.models import Bug, Repository

SAMPLE = "cartcalc"


class Command(BaseCommand):
    help = "Register the bundled sample repository (examples/cartcalc) at a pinned commit. Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--baseline", action="store_true", help="also run its baseline now (needs the sandbox)")
        parser.add_argument(
            "--with-bugs", action="store_true", help="add the hand-written sample bugs and queue their validation"
        )

    def handle(self, baseline, with_bugs, **options):
        dest = settings.VAR_DIR / "repos" / SAMPLE
        dest.parent.mkdir(parents=True, exist_ok=True)
        commit = build_sample_git_repo(dest)
        repo, created = Repository.objects.update_or_create(
            name=SAMPLE,
            defaults={"source": str(dest), "pinned_commit": commit, "test_command": "python -m pytest"},
        )
        self.stdout.write(f"{'Registered' if created else 'Already registered'}: {repo.name} at {commit[:12]} ({dest})")
        if baseline:
            from episodes.validation.jobs import run_baseline

            status = run_baseline(repo.pk)
            repo.refresh_from_db()
            self.stdout.write(f"Baseline: {status}, {len(repo.passing_tests)} passing tests")
        if with_bugs:
            self._add_sample_bugs(repo)

    def _add_sample_bugs(self, repo):
        from episodes.validation.jobs import enqueue_validation
        from episodes.sandboxes import workspaces

        mirror = workspaces().ensure_mirror(repo.source, repo.pinned_commit)
        added = 0
        for sample in SAMPLE_BUGS:
            patch = sample_patch(workspaces(), mirror, repo.pinned_commit, sample)
            bug, created = Bug.objects.get_or_create(
                repository=repo,
                base_commit=repo.pinned_commit,
                patch_hash=Bug.hash_patch(patch),
                defaults={
                    "patch": patch,
                    "verifier": sample.verifier,
                    "target": sample.target,
                    "problem_statement": sample.problem_statement,
                    "method": Bug.Method.MANUAL,
                    "injector": "hand-written sample",
                },
            )
            if created:
                enqueue_validation(bug)
                added += 1
        self.stdout.write(f"{added} sample bug(s) added and queued for validation ({len(SAMPLE_BUGS) - added} already there)")
