import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from episodes.engine.workspace import git
from episodes.models import Repository

SAMPLE = "cartcalc"
# Fixed identity and dates make the commit hash the same on every machine.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "BugForge",
    "GIT_AUTHOR_EMAIL": "samples@bugforge.invalid",
    "GIT_COMMITTER_NAME": "BugForge",
    "GIT_COMMITTER_EMAIL": "samples@bugforge.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}


def build_sample_git_repo(dest: Path) -> str:
    """Turn examples/cartcalc into a git repository at ``dest``; return its commit."""
    src = settings.BASE_DIR / "examples" / SAMPLE
    if (dest / ".git").exists():
        return git("rev-parse", "HEAD", cwd=dest).strip()
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".sample-"))
    shutil.copytree(src, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.pyc"))
    env = {**os.environ, **GIT_ENV}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "cartcalc sample library"]):
        subprocess.run(["git", *args], cwd=tmp, env=env, check=True, capture_output=True)
    tmp.rename(dest)
    return git("rev-parse", "HEAD", cwd=dest).strip()


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
            from episodes.jobs import run_baseline

            status = run_baseline(repo.pk)
            repo.refresh_from_db()
            self.stdout.write(f"Baseline: {status}, {len(repo.passing_tests)} passing tests")
        if with_bugs:
            self._add_sample_bugs(repo)

    def _add_sample_bugs(self, repo):
        from episodes.jobs import enqueue_validation
        from episodes.models import Bug
        from episodes.samples import SAMPLE_BUGS, sample_patch
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
