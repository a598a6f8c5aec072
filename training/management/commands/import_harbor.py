from django.core.management.base import BaseCommand, CommandError

from episodes.models import Repository
from training.harbor import import_tasks


class Command(BaseCommand):
    help = "Import BugForge Harbor tasks (a task directory or a folder of them) as bugs."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--repository", help="put every bug in this registered repository")

    def handle(self, path, repository, **options):
        repo = None
        if repository:
            repo = Repository.objects.filter(name=repository).first()
            if repo is None:
                raise CommandError(f"no repository named {repository}")
        try:
            result = import_tasks(path, repository=repo)
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}")
        for error in result["errors"]:
            self.stderr.write(f"skipped: {error}")
        self.stdout.write(f"{len(result['created'])} bug(s) created, {len(result['existing'])} already there, "
                          f"{len(result['errors'])} skipped")
