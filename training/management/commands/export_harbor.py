from django.core.management.base import BaseCommand, CommandError

from episodes.models import Bug
from training.harbor import export_bugs


class Command(BaseCommand):
    help = ("Export bugs as Harbor tasks: one directory per bug (task.toml, instruction.md, environment/ with the "
            "buggy source and a Dockerfile, tests/test.sh writing /logs/verifier/reward.txt, solution/solve.sh)")

    def add_arguments(self, parser):
        parser.add_argument("out", help="output folder")
        parser.add_argument("--status", action="append", help="bug status to export (repeatable; default approved)")
        parser.add_argument("--repo", action="append", help="repository name (repeatable)")
        parser.add_argument("--bug", type=int, action="append", help="bug id (repeatable)")

    def handle(self, out, status, repo, bug, **options):
        bugs = Bug.objects.select_related("repository").order_by("id")
        bugs = bugs.filter(pk__in=bug) if bug else bugs.filter(status__in=status or ["approved"])
        if repo:
            bugs = bugs.filter(repository__name__in=repo)
        if not bugs.exists():
            raise CommandError("no bug matches")
        try:
            tasks = export_bugs(bugs, out)
        except ValueError as exc:
            raise CommandError(str(exc))
        self.stdout.write(f"{len(tasks)} Harbor task(s) written to {out}")
