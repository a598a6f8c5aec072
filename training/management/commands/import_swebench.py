from django.core.management.base import BaseCommand, CommandError

from episodes.models import Repository
from training.swebench import import_instances, read_instances


class Command(BaseCommand):
    help = "Import SWE-bench task instances (JSONL or JSON list) as candidate bugs; --validate queues their validation."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--repository", help="put every bug in this registered repository")
        parser.add_argument("--validate", action="store_true", help="queue validation of the new bugs")

    def handle(self, path, repository, validate, **options):
        repo = None
        if repository:
            repo = Repository.objects.filter(name=repository).first()
            if repo is None:
                raise CommandError(f"no repository named {repository}")
        try:
            instances = read_instances(path)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {path}: {exc}")
        result = import_instances(instances, repository=repo, source_file=path)
        for error in result["errors"]:
            self.stderr.write(f"skipped: {error}")
        self.stdout.write(f"{len(result['created'])} bug(s) created, {len(result['existing'])} already there, "
                          f"{len(result['errors'])} skipped")
        if validate and result["created"]:
            from episodes.validation.jobs import enqueue_validation
            from episodes.models import Bug

            for bug in Bug.objects.filter(pk__in=result["created"]):
                enqueue_validation(bug)
            self.stdout.write(f"{len(result['created'])} validation(s) queued")
