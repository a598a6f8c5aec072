from django.core.management.base import BaseCommand, CommandError

from episodes.repositories import intake as repo_intake
from episodes.engine.git.workspace import GitError
from episodes.models import Repository


class Command(BaseCommand):
    help = ("Pin a repository again at what a ref names now, as a new, separate repository (the old pin and its "
            "bugs stay); then prepare it like add_repo (--enqueue: on 'verify').")

    def add_arguments(self, parser):
        parser.add_argument("repo", help="repository name")
        parser.add_argument("--ref", default="", help="default: the ref it was added with")
        parser.add_argument("--enqueue", action="store_true")

    def handle(self, repo, ref, enqueue, **options):
        old = Repository.objects.filter(name=repo).first()
        if old is None:
            raise CommandError(f"no repository named {repo!r}")
        try:
            new = repo_intake.repin(old, ref)
        except (ValueError, GitError) as exc:
            raise CommandError(str(exc)) from None
        if enqueue:
            repo_intake.enqueue_prepare(new)
            self.stdout.write(f"{new.name}: queued on 'verify' (job {new.job_id})")
            return
        try:
            repo_intake.prepare(new.pk)
        except Exception:  # noqa: BLE001 — recorded on the repository and printed below
            pass
        new.refresh_from_db()
        for line in repo_intake.report_lines(new):
            self.stdout.write(line)
