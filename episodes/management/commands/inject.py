import json

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from episodes.injection import batches as injection
from episodes.models import Bug, LLMEndpoint, Repository


class Command(BaseCommand):
    help = "Plant bugs in a repository (queued on 'inject'; --sync runs inline, validation included), or --report figures."

    def add_arguments(self, parser):
        parser.add_argument("repo", nargs="?", help="repository name")
        parser.add_argument("--method", default=Bug.Method.PROCEDURAL, choices=injection.METHODS)
        parser.add_argument("--size", type=int, default=2, help="combine: how many valid bugs to merge (2 or 3)")
        parser.add_argument("--target", action="append", dest="targets", help="LLM methods: path::qualname (repeatable)")
        parser.add_argument("--count", type=int, default=10)
        parser.add_argument("--min-realism", type=float, default=None,
                            help="procedural: drop mutations scoring below this realism (default 0.5; 0 keeps all)")
        parser.add_argument("--max-per-function", type=int, default=None,
                            help="procedural: at most this many candidates per function (default 2; 0: no cap)")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--operator", action="append", dest="operators", help="procedural operator (repeatable)")
        parser.add_argument("--endpoint", help="LLM endpoint name (LLM methods)")
        parser.add_argument("--statement-style", choices=["symptom", "traceback", "function"],
                            help="have an LLM write each valid bug's problem statement in this style")
        parser.add_argument("--statement-endpoint", help="LLM endpoint name for the statements (default: --endpoint)")
        parser.add_argument("--sync", action="store_true", help="run here, validating each candidate inline")
        parser.add_argument("--report", action="store_true", help="print yield figures instead of injecting")
        parser.add_argument("--json", action="store_true", help="with --report: machine-readable")

    def handle(self, repo, method, count, seed, operators, endpoint, sync, report, json, size, targets,
               statement_style=None, statement_endpoint=None, **options):
        repository = None
        if repo:
            repository = Repository.objects.filter(name=repo).first()
            if repository is None:
                raise CommandError(f"no repository named {repo!r}")
        if report:
            return self._report(repository, as_json=json)
        if repository is None:
            raise CommandError("name the repository to inject into")
        llm_endpoint = None
        if method in injection.LLM_METHODS:
            llm_endpoint = LLMEndpoint.objects.filter(name=endpoint).first() if endpoint else LLMEndpoint.objects.first()
            if llm_endpoint is None:
                raise CommandError("LLM injection needs an endpoint: add one in the admin and name it with --endpoint")
        statement = {}
        if statement_style:
            name = statement_endpoint or endpoint
            ep = LLMEndpoint.objects.filter(name=name).first() if name else LLMEndpoint.objects.first()
            if ep is None:
                raise CommandError("LLM statements need an endpoint: name it with --statement-endpoint")
            statement = {"statement_style": statement_style, "statement_endpoint": ep}
        realism = {k: options[k] for k in ("min_realism", "max_per_function") if options.get(k) is not None}
        if sync:
            bar = tqdm(total=count, desc=f"injecting ({method})", unit="candidate", file=self.stderr)

            def progress(done, total, bug):
                bar.total = total
                bar.update(done - bar.n)
                bar.set_postfix_str(f"{bug.status if bug else 'duplicate'} {bug.operator if bug else ''}")

            batch = injection.start_batch(repository, method, count, seed=seed, operators=operators, size=size,
                                          endpoint=llm_endpoint, targets=targets, sync=True, progress=progress,
                                          **statement, **realism)
            bar.close()
            own = injection.batch_figures(batch)
            self.stdout.write(f"batch {batch.pk}: {batch.status}, {own['candidates']} candidate(s) from "
                              f"{own['attempts']} attempt(s){(': ' + batch.error.splitlines()[0]) if batch.error else ''}")
            if batch.note:
                self.stdout.write(f"  {batch.note}")
            self._print(own)
            self.stdout.write("all batches of this repository:")
            self._report(repository)
        else:
            batch = injection.start_batch(repository, method, count, seed=seed, operators=operators, size=size,
                                          endpoint=llm_endpoint, targets=targets, **statement, **realism)
            self.stdout.write(f"batch {batch.pk} queued on 'inject' (job {batch.job_id})")

    def _report(self, repository, as_json=False):
        rows = injection.figures(repository)
        if as_json:
            self.stdout.write(json.dumps(rows, indent=2, default=str))
            return
        if not rows:
            self.stdout.write("no injected bug yet")
        for r in rows:
            self.stdout.write(f"{r['repository']} / {r['method']}:")
            self._print(r)

    def _print(self, r: dict) -> None:
        def money(v):
            return f"${v:.4f}" if v is not None else "—"

        def secs(v):
            return f"{v:.1f}s" if v is not None else "—"

        y = f"{r['yield']:.0%}" if r["yield"] is not None else "—"
        self.stdout.write(
            f"    {r['attempts']} attempts → {r['candidates']} candidates: {r['valid']} valid ({r['approved']} approved), "
            f"{r['rejected']} rejected by curators, {r['invalid']} invalid, {r['flaky']} flaky, {r['pending']} pending; "
            f"yield {y} of attempts"
        )
        self.stdout.write(
            f"    LLM: {r['llm_calls']} calls ({r['failed_llm_calls']} failed), {money(r['cost_usd'])}; "
            f"cost per valid {money(r['cost_per_valid_usd'])}, per approved {money(r['cost_per_approved_usd'])}; "
            f"time per candidate {secs(r['seconds_per_candidate'])}, per valid {secs(r['seconds_per_valid'])} "
            "(generation + validation)"
        )
        for reason, n in r["invalid_by_reason"].items():
            self.stdout.write(f"    invalid: {reason}: {n}")
        for op, o in sorted(r["by_operator"].items()):
            self.stdout.write(f"    {op:<22} {o['valid']:>4}/{o['candidates']:<4} valid")
