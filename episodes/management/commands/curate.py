"""The curation and flaky-triage actions of the web pages, from the command line. Every change
is made as a named staff user and lands in the audit trail, exactly as from the browser.

    manage.py curate list "status=valid&repository=cartcalc"
    manage.py curate review 12 --as alice --verdict approve --difficulty "<15m"
    manage.py curate bulk "status=valid&repository=cartcalc" --as alice --verdict approve [--yes]
    manage.py curate quarantine 12 --as alice [--release]
    manage.py curate stable 12 --as alice --reason "pinned the clock"
    manage.py curate rerun 12 --as alice -n 10
    manage.py curate verifier 12 --as alice --file new_verifier.py
"""
from urllib.parse import parse_qsl

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from episodes.curation import actions as curation
from episodes.curation.forms import BugFilterForm, ReviewForm
from episodes.models import AuditEvent, Bug


class Command(BaseCommand):
    help = "Review, bulk-review, quarantine, mark stable, rerun or edit the verifier of bugs (audited)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="bugs matching a filter (the bug list's query string)")
        listing.add_argument("filter", nargs="?", default="")
        for name in ("review", "quarantine", "stable", "rerun", "verifier"):
            p = sub.add_parser(name)
            p.add_argument("bug_id", type=int)
            p.add_argument("--as", dest="username", required=True, help="the staff user acting")
        undo = sub.add_parser("undo", help="undo a review or a bulk review, by its audit event id (bug history)")
        undo.add_argument("event_id", type=int)
        undo.add_argument("--as", dest="username", required=True)
        bulk = sub.add_parser("bulk", help=f"review the curatable bugs of a filter (at most {curation.BULK_CAP})")
        bulk.add_argument("filter")
        bulk.add_argument("--as", dest="username", required=True)
        bulk.add_argument("--yes", action="store_true", help="apply; without it, only say what would change")
        for p in (sub.choices["review"], bulk):
            p.add_argument("--verdict", choices=["approve", "reject"], required=True)
            p.add_argument("--difficulty", default="")
            p.add_argument("--notes", default="")
        review = sub.choices["review"]
        review.add_argument("--underspecified", type=int, default=0)
        review.add_argument("--rejects-valid-fixes", type=int, default=0)
        review.add_argument("--other-major-issue", action="store_true")
        sub.choices["quarantine"].add_argument("--release", action="store_true")
        sub.choices["stable"].add_argument("--reason", required=True)
        sub.choices["rerun"].add_argument("-n", type=int, default=5, help="more runs per side (1–100)")
        sub.choices["verifier"].add_argument("--file", required=True, help="the new verifier script")

    def handle(self, action, **opts):
        if action == "list":
            return self._list(opts["filter"])
        actor = self._staff(opts["username"])
        if action == "bulk":
            return self._bulk(actor, opts)
        if action == "undo":
            return self._undo(actor, opts["event_id"])
        bug = Bug.objects.filter(pk=opts["bug_id"]).first()
        if bug is None:
            raise CommandError(f"no bug {opts['bug_id']}")
        try:
            if action == "review":
                form = ReviewForm({
                    "underspecified": opts["underspecified"], "rejects_valid_fixes": opts["rejects_valid_fixes"],
                    "other_major_issue": opts["other_major_issue"], "difficulty": opts["difficulty"],
                    "notes": opts["notes"], "verdict": opts["verdict"],
                })
                if not form.is_valid():
                    raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
                try:
                    bug.review(actor, **form.cleaned_data)
                except ValueError as exc:
                    raise CommandError(f"bug {bug.pk}: {exc}") from None
                self.stdout.write(f"bug {bug.pk}: {opts['verdict']} saved; the bug is now {bug.status}")
            elif action == "quarantine":
                bug.set_quarantined(actor, not opts["release"])
                self.stdout.write(f"bug {bug.pk}: {'quarantined' if bug.quarantined else 'released'}")
            elif action == "stable":
                bug.mark_stable(actor, opts["reason"])
                self.stdout.write(f"bug {bug.pk}: marked stable")
            elif action == "rerun":
                if not 1 <= opts["n"] <= 100:
                    raise CommandError("-n must be between 1 and 100")
                job = curation.enqueue_reruns(actor, bug, opts["n"])
                self.stdout.write(f"bug {bug.pk}: {opts['n']}+{opts['n']} runs queued (job {job}); "
                                  f"`manage.py rqworker verify` runs them")
            elif action == "verifier":
                with open(opts["file"], encoding="utf-8") as fh:
                    job = curation.edit_verifier(actor, bug, fh.read())
                self.stdout.write(f"bug {bug.pk}: verifier saved, validation queued (job {job})")
        except (ValueError, OSError) as exc:
            raise CommandError(f"bug {bug.pk}: {exc}") from exc

    def _staff(self, username):
        user = get_user_model().objects.filter(username=username).first()
        if user is None or not user.is_staff:
            raise CommandError(f"{username!r} is not a staff user")
        return user

    def _filter(self, text: str) -> dict:
        form = BugFilterForm(dict(parse_qsl(text)) or None)
        data = form.filter_data()
        if form.errors:
            raise CommandError("bad filter: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        return data

    def _list(self, text: str):
        data = self._filter(text)
        page = curation.paginate(curation.list_rows(curation.filtered_bugs(data)), 1)
        for bug in page.rows:
            self.stdout.write(f"{bug.pk:>8}  {bug.status:<10} {bug.repository.name:<16} {bug.method:<12} {bug.target}")
        more = "+" if page.capped else ""
        self.stdout.write(f"{page.count}{more} bug(s) match; first {len(page.rows)} shown")

    def _undo(self, actor, event_id: int):
        event = AuditEvent.objects.filter(pk=event_id).first()
        if event is None:
            raise CommandError(f"no audit event {event_id}")
        try:
            left = curation.undo(actor, event)
        except (ValueError, Bug.DoesNotExist) as exc:
            raise CommandError(f"nothing undone: {exc}") from None
        self.stdout.write(f"undone {event.action} {event.pk}" + (f"; left as they are: {'; '.join(left)}" if left else ""))

    def _bulk(self, actor, opts):
        data = self._filter(opts["filter"])
        ids = list(curation.bulk_candidates(data).values_list("id", flat=True)[:curation.BULK_CAP])
        if not opts["yes"]:
            self.stdout.write(f"would {opts['verdict']} {len(ids)} bug(s): {ids[:20]}{' …' if len(ids) > 20 else ''}; "
                              "add --yes to apply")
            return
        try:
            done = curation.bulk_review(actor, ids, data, opts["verdict"], notes=opts["notes"],
                                        difficulty=opts["difficulty"])
        except ValueError as exc:
            raise CommandError(f"nothing changed: {exc}") from None
        self.stdout.write(f"{curation.PAST[opts['verdict']]} {len(done)} bug(s)")
