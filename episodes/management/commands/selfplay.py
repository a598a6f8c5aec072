from django.core.management.base import BaseCommand, CommandError

from episodes.injection import selfplay
from episodes.models import Repository


def _band(text: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise CommandError(f"--band takes LOW,HIGH (e.g. 0.2,0.8), not {text!r}")
    return low, high


class Command(BaseCommand):
    help = ("Self-play: rounds of plant bugs -> let the solver attempt them -> shift generation toward the "
            "solve-rate band. Runs here (default) or on a queue (--enqueue): `inject`, or `train` for a checkpoint.")

    def add_arguments(self, parser):
        parser.add_argument("repo", help="repository name or id")
        parser.add_argument("--solver", required=True, help='"teacher:<name>" or "checkpoint:<model dir | run-<id>>"')
        parser.add_argument("--band", default="0.2,0.8", help="target solve-rate band LOW,HIGH")
        parser.add_argument("--rounds", type=int, default=4)
        parser.add_argument("--bugs-per-round", type=int, default=8)
        parser.add_argument("--attempts", type=int, default=4, help="attempts per bug")
        parser.add_argument("--sizes", default="1,2", help="how many bugs one planted bug combines, e.g. 1,2,3")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--enqueue", action="store_true", help="queue it (on `inject`; `train` for a checkpoint) instead of running here")

    def handle(self, repo, solver, band, rounds, bugs_per_round, attempts, sizes, seed, enqueue, **o):
        r = Repository.objects.filter(pk=int(repo)).first() if repo.isdigit() else Repository.objects.filter(name=repo).first()
        if r is None:
            raise CommandError(f"no repository {repo!r}")
        try:
            sp = selfplay.start(r, solver, band=_band(band), rounds=rounds, bugs_per_round=bugs_per_round,
                                attempts_per_bug=attempts, seed=seed, sizes=tuple(int(s) for s in sizes.split(",")),
                                sync=not enqueue)
        except ValueError as exc:
            raise CommandError(str(exc))
        if enqueue:
            self.stdout.write(f"self-play {sp.pk} queued on {selfplay.queue_for(sp.solver)} (job {sp.job_id})")
            return
        for report in sp.rounds:
            hit = "—" if report["hit_rate"] is None else f"{report['hit_rate']:.0%}"
            self.stdout.write(f"round {report['round']}: planted {report['planted']}, valid {report['valid']}, "
                              f"in band {report['in_band']} (hit rate {hit})")
        self.stdout.write(f"self-play {sp.pk}: {sp.status}{(': ' + sp.error.splitlines()[0]) if sp.error else ''}")
