from django.core.management.base import BaseCommand, CommandError

from episodes.injection import statements
from episodes.models import Bug, LLMEndpoint


class Command(BaseCommand):
    help = "Rewrite bugs' problem statements with an LLM endpoint (inline; --queue puts them on 'inject')."

    def add_arguments(self, parser):
        parser.add_argument("bug_ids", nargs="+", type=int)
        parser.add_argument("--endpoint", required=True, help="LLM endpoint name")
        parser.add_argument("--style", default="symptom", choices=statements.STYLES)
        parser.add_argument("--queue", action="store_true", help="enqueue on 'inject' instead of running here")

    def handle(self, bug_ids, endpoint, style, queue, **options):
        ep = LLMEndpoint.objects.filter(name=endpoint).first()
        if ep is None:
            raise CommandError(f"no LLM endpoint named {endpoint!r}")
        bugs = {b.pk: b for b in Bug.objects.filter(pk__in=bug_ids)}
        missing = [i for i in bug_ids if i not in bugs]
        if missing:
            raise CommandError(f"no bug with id {', '.join(map(str, missing))}")
        failed = 0
        for pk in bug_ids:
            bug = bugs[pk]
            if queue:
                self.stdout.write(f"bug {pk}: queued (job {statements.enqueue_statement(bug, ep, style)})")
                continue
            try:
                statements.write_statement(bug, ep, style)
            except statements.StatementError as exc:
                failed += 1
                self.stderr.write(f"bug {pk}: {exc}")
                continue
            flags = bug.statement_flags
            self.stdout.write(f"bug {pk}: {style} statement written"
                              f"{'; leaks: ' + '; '.join(flags['leaks']) if flags['leaks'] else ''}"
                              f"{'; underspecified: ' + '; '.join(flags['underspecified_reasons']) if flags['underspecified'] else ''}")
        if failed:
            raise CommandError(f"{failed} of {len(bug_ids)} statement(s) not written")
