from django.core.management.base import BaseCommand, CommandError

from episodes.models import Bug
from training.swebench import export_bugs, write_jsonl


class Command(BaseCommand):
    help = "Export bugs as SWE-bench task instances (JSONL): instance_id, repo, base_commit, patch, test_patch, FAIL_TO_PASS, …"

    def add_arguments(self, parser):
        parser.add_argument("out", help="output .jsonl file")
        parser.add_argument("--status", action="append", help="bug status to export (repeatable; default approved)")
        parser.add_argument("--repo", action="append", help="repository name (repeatable)")
        parser.add_argument("--bug", type=int, action="append", help="bug id (repeatable)")

    def handle(self, out, status, repo, bug, **options):
        bugs = Bug.objects.select_related("repository").order_by("id")
        if bug:
            bugs = bugs.filter(pk__in=bug)
        else:
            bugs = bugs.filter(status__in=status or ["approved"])
        if repo:
            bugs = bugs.filter(repository__name__in=repo)
        instances = export_bugs(bugs)
        if not instances:
            raise CommandError("no bug matches")
        write_jsonl(instances, out)
        self.stdout.write(f"{len(instances)} instance(s) written to {out}")
