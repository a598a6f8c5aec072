from django.core.management.base import BaseCommand, CommandError

from episodes.validation.jobs import run_baseline
from episodes.models import Repository


class Command(BaseCommand):
    help = "Run a repository's test suite on clean code and store per-test status."

    def add_arguments(self, parser):
        parser.add_argument("repo", help="repository name")

    def handle(self, repo, **options):
        try:
            repository = Repository.objects.get(name=repo)
        except Repository.DoesNotExist:
            raise CommandError(f"no repository named {repo!r}") from None
        status = run_baseline(repository.pk)
        repository.refresh_from_db()
        self.stdout.write(
            f"{repository.name}: {status}; {len(repository.passing_tests)}/{len(repository.baseline_tests)} tests pass"
            f" in {repository.baseline_duration_s or 0:.1f}s {repository.error}"
        )
