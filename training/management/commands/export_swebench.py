from django.core.management.base import BaseCommand, CommandError

from episodes.models import Bug
from training.swebench import bundle_dir, export_bugs


class Command(BaseCommand):
    help = ("Export bugs as SWE-bench task instances (JSONL): base_commit is the buggy code, a commit made in the mirror "
            "and bundled in <stem>-repos/<repository>.bundle beside the file; patch is the fix")

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
        if not bugs.exists():
            raise CommandError("no bug matches")
        try:
            instances = export_bugs(bugs, out)
        except ValueError as exc:
            raise CommandError(str(exc))
        self.stdout.write(f"{len(instances)} instance(s) written to {out}, their buggy commits bundled in {bundle_dir(out)}")
