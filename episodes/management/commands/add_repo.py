from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from episodes.injection import batches as injection

from episodes.repositories import intake as repo_intake
from episodes.models import Bug, Repository


class Command(BaseCommand):
    help = ("Add a repository (git URL or local path) at a ref, pinned to its 40-hex commit: fetch, infer and build its "
            "test environment, run the baseline and print the report. --from FILE adds one per line; --enqueue queues "
            "the work on 'verify' instead.")

    def add_arguments(self, parser):
        parser.add_argument("source", nargs="?", help="git URL or absolute path of a local git repository")
        parser.add_argument("--ref", default="", help="branch, tag or commit (default: the default branch)")
        parser.add_argument("--name", default="", help="default: from the source")
        parser.add_argument("--test-command", help="instead of the inferred one")
        parser.add_argument("--install-command", help="instead of the inferred one ('' for none)")
        parser.add_argument("--pip", action="append", dest="pip_packages", help="environment package (repeatable; "
                            "replaces the inferred list)")
        parser.add_argument("--python", help="interpreter for the environment")
        parser.add_argument("--from", dest="from_file", help="file with one 'SOURCE [REF] [key=value ...]' a line")
        parser.add_argument("--enqueue", action="store_true", help="queue the preparation on 'verify' and return")
        parser.add_argument("--inject", type=int, default=0, metavar="N",
                            help="once ready, plant a first procedural batch of N candidates (validated inline)")

    def handle(self, source, from_file, enqueue, inject, **options):
        if bool(source) == bool(from_file):
            raise CommandError("give a SOURCE or --from FILE")
        if from_file:
            try:
                with open(from_file) as f:
                    requests = [(n, r) for n, line in enumerate(f, 1) if (r := self._parse(line, n))]
            except OSError as exc:
                raise CommandError(f"cannot read {from_file}: {exc}") from None
        else:
            fields = {k: options[k] for k in ("test_command", "install_command", "pip_packages", "python")}
            requests = [(0, repo_intake.RepoRequest(source=source, ref=options["ref"], name=options["name"], **fields))]
        added = []
        for line, request in requests:
            try:
                repo = repo_intake.register(request)
            except ValueError as exc:
                where = f"line {line}: " if line else ""
                if not from_file:
                    raise CommandError(str(exc)) from None
                self.stderr.write(f"{where}{exc}")
                continue
            added.append(repo)
            if enqueue:
                repo_intake.enqueue_prepare(repo)
                self.stdout.write(f"{repo.name}: queued on 'verify' (job {repo.job_id})")
            else:
                self._prepare(repo, inject)
        if from_file:
            self._table(added)
        if not added:
            raise CommandError("no repository added")
        if not from_file and not enqueue and added[0].status != Repository.Status.READY:
            raise CommandError(f"{added[0].name} is not ready: {added[0].error.splitlines()[0] if added[0].error else ''}")

    def _parse(self, line, number):
        try:
            return repo_intake.parse_line(line)
        except ValueError as exc:
            raise CommandError(f"line {number}: {exc}") from None

    def _prepare(self, repo, inject):
        bar = tqdm(total=len(repo_intake.STEPS), desc=repo.name, unit="step", file=self.stderr)

        def progress(step, done, total):
            bar.update(done - bar.n)
            bar.set_postfix_str(step)

        try:
            repo_intake.prepare(repo.pk, progress=progress)
        except Exception:  # noqa: BLE001 — recorded on the repository, shown in the report
            pass
        finally:
            bar.close()
        repo.refresh_from_db()
        for line in repo_intake.report_lines(repo):
            self.stdout.write(line)
        if inject and repo.status == Repository.Status.READY:
            batch = injection.start_batch(repo, Bug.Method.PROCEDURAL, inject, sync=True)
            own = injection.batch_figures(batch)
            self.stdout.write(f"first batch {batch.pk}: {own['candidates']} candidate(s), {own['valid']} valid, "
                              f"{own['invalid']} invalid, {own['flaky']} flaky")
            if batch.note:
                self.stdout.write(f"  {batch.note}")

    def _table(self, repos):
        rows = [["name", "status", "commit", "passing", "suite", "lines", "problem"]]
        rows += [repo_intake.summary_row(Repository.objects.get(pk=r.pk)) for r in repos]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
