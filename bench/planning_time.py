"""Seconds to plan N procedural bugs with the realism filter and the per-function cap on
(``procedural.plan``'s defaults: ``min_realism=0.5``, ``max_per_function=2``) against off
(``min_realism=0, max_per_function=0``: the baseline), measured in the same run, on the bundled
sample (``examples/cartcalc``) and on each source directory named on the command line.

Every line is treated as covered (one synthetic test covers all of them; no sandbox, no
baseline run), so every mutation of every function above the complexity floor is a candidate:
the worst case for planning. Each plan is timed cold — the per-file mutation cache cleared, so
enumerating the mutations (LibCST) is included, as in a worker's first batch over a commit — and
warm (the cache filled: the selection alone, as in the worker's next batches). Prints the
median of ``--repeat`` runs per figure (wall-clock and this process's CPU seconds, which a busy
machine disturbs less) and the on/off ratios.

    .venv/bin/python bench/planning_time.py [--count 20] [--seed 1] [--repeat 3] [SRC_DIR ...]

e.g. on the `packaging` library's sdist:

    .venv/bin/pip download --no-deps --no-binary :all: packaging==24.2 -d /tmp/pkgsrc
    tar xzf /tmp/pkgsrc/packaging-24.2.tar.gz -C /tmp/pkgsrc
    .venv/bin/python bench/planning_time.py /tmp/pkgsrc/packaging-24.2/src
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETTINGS = {"off": {"min_realism": 0.0, "max_per_function": 0}, "on": {}}  # "on": plan's defaults


def read_sources(base: Path) -> dict[str, str]:
    """The library's ``.py`` files under ``base`` (tests, docs and build scripts left out), by
    path relative to ``base``."""
    skip = {"tests", "test", "testing", "docs", "doc", "build", "dist", ".git", ".tox", ".venv", "__pycache__"}
    sources = {}
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(base)
        if skip & set(rel.parts[:-1]) or rel.name.startswith("test_") or rel.name.endswith("_test.py") \
                or rel.name in {"conftest.py", "setup.py", "noxfile.py"}:
            continue
        sources[rel.as_posix()] = path.read_text(encoding="utf-8", errors="replace")
    return sources


def everything_covered(sources: dict[str, str]) -> dict:
    return {"tests": ["bench::all"], "sets": [[0]],
            "lines": {path: {str(i): 0 for i in range(1, src.count("\n") + 2)} for path, src in sources.items()}}


def measure(name: str, sources: dict[str, str], count: int, seed: int, repeat: int) -> dict:
    from episodes.engine.inject import procedural

    coverage = everything_covered(sources)
    times: dict[str, list[float]] = {f"{s}_{w}{c}": [] for s in SETTINGS for w in ("cold", "warm") for c in ("", "_cpu")}
    planned, stats = {}, {}
    for _ in range(repeat):
        for setting, kwargs in SETTINGS.items():
            for warmth in ("cold", "warm"):
                if warmth == "cold":
                    procedural._all_mutations.cache_clear()
                stats[setting] = {}
                started, cpu = time.perf_counter(), time.process_time()
                plan = procedural.plan(sources, coverage, count, seed, stats=stats[setting], **kwargs)
                times[f"{setting}_{warmth}"].append(time.perf_counter() - started)
                times[f"{setting}_{warmth}_cpu"].append(time.process_time() - cpu)
                planned[setting] = plan
    med = {k: statistics.median(v) for k, v in times.items()}
    functions = {(c.mutation.path, c.mutation.qualname) for c in planned["on"]}
    per_fn = max((sum((c.mutation.path, c.mutation.qualname) == f for c in planned["on"]) for f in functions),
                 default=0)
    return {
        "name": name, "files": len(sources), "lines": sum(s.count("\n") + 1 for s in sources.values()),
        "mutations": stats["on"]["mutations"], "planned_off": len(planned["off"]), "planned_on": len(planned["on"]),
        "below_realism": sum((c.realism or 0) < procedural.MIN_REALISM for c in planned["off"]),
        "min_realism_on": min((c.realism for c in planned["on"]), default=None), "max_per_function_on": per_fn,
        "read_on": len(planned["on"]) + stats["on"]["unrealistic"] + stats["on"]["capped"], **med,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="*", help="source directories of libraries used as repositories")
    parser.add_argument("--count", type=int, default=20, help="bugs to plan")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (the median is printed)")
    args = parser.parse_args()
    targets = [("examples/cartcalc", ROOT / "examples" / "cartcalc")]
    targets += [(d, Path(d)) for d in args.dirs]
    print(f"planning {args.count} bugs, seed {args.seed}, median of {args.repeat}; "
          "off = min_realism 0, no cap (baseline); on = min_realism 0.5, max 2 per function")
    for name, base in targets:
        if not base.is_dir():
            sys.exit(f"{base}: not a directory")
        r = measure(name, read_sources(base), args.count, args.seed, args.repeat)
        print(f"\n{r['name']}: {r['files']} files, {r['lines']} lines, {r['mutations']} mutations")
        print(f"  planned: off {r['planned_off']} ({r['below_realism']} below realism {0.5}), on {r['planned_on']} "
              f"(lowest realism {r['min_realism_on']}, at most {r['max_per_function_on']} per function; "
              f"{r['read_on']} mutations read from the spread order)")
        for warmth, what in (("cold", "enumeration included"), ("warm", "mutations cached: selection only")):
            off, on = r[f"off_{warmth}"], r[f"on_{warmth}"]
            off_cpu, on_cpu = r[f"off_{warmth}_cpu"], r[f"on_{warmth}_cpu"]
            print(f"  {warmth} ({what}): off {off:.3f} s, on {on:.3f} s, ratio on/off {on / off:.2f}; "
                  f"CPU off {off_cpu:.3f} s, on {on_cpu:.3f} s, ratio {on_cpu / off_cpu:.2f}")


if __name__ == "__main__":
    main()
