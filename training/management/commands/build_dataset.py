from django.core.management.base import BaseCommand, CommandError

from training.datasets import build_rl_dataset, build_sft_dataset


class Command(BaseCommand):
    help = "Build an SFT set (successful episodes) or an RL set (approved bugs), split train / held-out without leakage."

    def add_arguments(self, parser):
        parser.add_argument("--kind", choices=["sft", "rl"], required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--teacher", action="append", help="teacher name (SFT; repeatable)")
        parser.add_argument("--repo", action="append", help="repository name (repeatable)")
        parser.add_argument("--min-reward", type=float, help="lowest episode reward kept (SFT; default 1.0)")
        parser.add_argument("--allow-unknown-terms", action="store_true",
                            help="keep episodes whose teacher's terms of use are not recorded")
        parser.add_argument("--allow-disallowed-terms", action="store_true",
                            help="keep episodes whose teacher's terms forbid training use")
        parser.add_argument("--max-length", type=int, help="longest trajectory kept, in characters (SFT)")
        parser.add_argument("--include-suspicious", action="store_true",
                            help="keep episodes the grader flagged suspicious or tampered (SFT)")
        parser.add_argument("--status", action="append", help="bug status kept (RL; default approved)")
        parser.add_argument("--max-flake-rate", type=float,
                            help="RL: keep bugs stable at below this flake rate (default BUGFORGE_FLAKE_TARGET)")
        parser.add_argument("--include-flaky", action="store_true",
                            help="RL: keep bugs whose verifier disagreed with itself too")
        parser.add_argument("--solver", help='RL curriculum: the solver whose solve rate the band is, e.g. "teacher:sonnet"')
        parser.add_argument("--band", help="RL curriculum: solve-rate band kept, e.g. 0.2,0.8 (default 0.2,0.8 with --solver)")
        parser.add_argument("--min-attempts", type=int, help="RL curriculum: attempts by the solver a bug needs to be measured")
        parser.add_argument("--split-by", choices=["bug", "repository"], default="bug")
        parser.add_argument("--heldout-fraction", type=float, default=0.2)
        parser.add_argument("--heldout-bug", type=int, action="append", help="explicit held-out bug id (repeatable)")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, kind, name, **o):
        filters = {
            "teacher": o["teacher"], "repository": o["repo"], "min_reward": o["min_reward"],
            "allow_unknown_terms": o["allow_unknown_terms"] or None,
            "allow_disallowed_terms": o["allow_disallowed_terms"] or None, "max_length": o["max_length"],
            "include_suspicious": o["include_suspicious"] or None,
            "statuses": o["status"], "split_by": o["split_by"], "heldout_fraction": o["heldout_fraction"],
            "heldout_bugs": o["heldout_bug"], "seed": o["seed"],
            "max_flake_rate": o["max_flake_rate"], "include_flaky": o["include_flaky"] or None,
            "solver": o["solver"], "band": o["band"], "min_attempts": o["min_attempts"],
        }
        if kind == "rl":
            for key in ("teacher", "min_reward", "allow_unknown_terms", "allow_disallowed_terms", "max_length",
                        "include_suspicious"):
                if filters.pop(key):
                    raise CommandError(f"--{key.replace('_', '-')} applies to SFT sets only")
        else:
            for key in ("statuses", "max_flake_rate", "include_flaky", "solver", "band", "min_attempts"):
                if filters.pop(key):
                    raise CommandError(f"--{'status' if key == 'statuses' else key.replace('_', '-')} applies to RL sets only")
        try:
            ds = (build_sft_dataset if kind == "sft" else build_rl_dataset)(name, filters)
        except ValueError as exc:
            raise CommandError(str(exc))
        m = ds.manifest
        self.stdout.write(f"{ds.name}: {ds.train_rows} train / {ds.heldout_rows} held-out rows "
                          f"({len(m['bugs']['train'])} / {len(m['bugs']['heldout'])} bugs), hash {ds.content_hash[:12]}, at {ds.path}")
        curriculum = m.get("curriculum")
        if curriculum:
            self.stdout.write(f"curriculum {curriculum['solver']} band {curriculum['band'][0]:.0%}–{curriculum['band'][1]:.0%}: "
                              f"{curriculum['kept']} kept, {len(curriculum['dropped_bugs'])} dropped")
            for bug_id, reason in curriculum["dropped_bugs"].items():
                self.stdout.write(f"  dropped bug {bug_id}: {reason}")
        for warning in m.get("warnings", []):
            self.stderr.write(f"warning: {warning}")
