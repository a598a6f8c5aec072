from django.core.management.base import BaseCommand, CommandError

from episodes.models import Repository


class Command(BaseCommand):
    help = "Take a repository pin out of use: no new batches, hidden from the list; its bugs stay reproducible."

    def add_arguments(self, parser):
        parser.add_argument("repo", help="repository name")

    def handle(self, repo, **options):
        row = Repository.objects.filter(name=repo).first()
        if row is None:
            raise CommandError(f"no repository named {repo!r}")
        row.archive()
        self.stdout.write(f"{row.name} removed from use; its {row.bugs.count()} bug(s) stay")
