"""Blind sample of procedural mutations before and after the realism filter.

Plans mutations (``procedural.plan``, every line treated as covered: no sandbox needed) on the
bundled sample repository and on pure-Python libraries of the venv used as repositories, once
with the filter off (``min_realism=0, max_per_function=0``: the old behaviour) and once with
the defaults. Writes N mutations per side, shuffled, each with its diff and the enclosing
function, to ``<out>/realism_sample.md`` (+ ``.json``), and the labels (side, operator,
score) to ``<out>/realism_key.json`` — review the sample blind, then score it with
``--score marks.json`` (``{"1": true, "2": false, ...}``: would pass as a subtle realistic bug).
Prints the counts kept/filtered per operator.

    .venv/bin/python bench/realism_sample.py [--n 20] [--seed 1] [--lib packaging] [--out var/realism]
"""
from __future__ import annotations

import argparse
import ast
import json
import random
import sys
import sysconfig
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _sources(name: str) -> dict[str, str]:
    base = ROOT / "examples" / "cartcalc" if name == "cartcalc" else Path(sysconfig.get_paths()["purelib"])
    files = sorted((base / name).rglob("*.py"))
    return {f"{name}:{p.relative_to(base)}": p.read_text() for p in files if "test" not in p.name}


def _everything_covered(sources: dict[str, str]) -> dict:
    return {"tests": ["bench::all"], "lines": {path: {str(i): [0] for i in range(1, src.count("\n") + 2)}
                                                for path, src in sources.items()}}


def _function_text(source: str, qualname: str) -> str:
    from episodes.engine.inject.mutators.realism import _function

    fn = _function(ast.parse(source), qualname)
    return ast.get_source_segment(source, fn) if fn is not None else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="mutations per side")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lib", action="append", default=None, help="venv library used as a repository (repeatable)")
    parser.add_argument("--out", default=str(ROOT / "var" / "realism"))
    parser.add_argument("--score", help="marks file of a blind review: prints the pass rate per side")
    args = parser.parse_args()
    out = Path(args.out)
    if args.score:
        key = json.loads((out / "realism_key.json").read_text())
        marks = json.loads(Path(args.score).read_text())
        for side in ("before", "after"):
            ids = [i for i, k in key.items() if k["side"] == side and i in marks]
            passed = sum(bool(marks[i]) for i in ids)
            print(f"{side}: {passed}/{len(ids)} pass ({passed / len(ids):.0%})" if ids else f"{side}: none marked")
        return

    from episodes.engine.inject import procedural

    sources: dict[str, str] = {}
    for name in ["cartcalc", *(args.lib or [])]:
        sources.update(_sources(name))
    coverage = _everything_covered(sources)
    every = procedural.plan(sources, coverage, 2000, args.seed, min_realism=0, max_per_function=0)
    kept = procedural.plan(sources, coverage, 2000, args.seed)
    total, passed = Counter(c.mutation.operator for c in every), Counter(
        c.mutation.operator for c in every if c.realism >= procedural.MIN_REALISM)
    in_plan = Counter(c.mutation.operator for c in kept)
    print(f"{len(every)} mutations in {len(sources)} files; threshold {procedural.MIN_REALISM}, "
          f"cap {procedural.MAX_PER_FUNCTION}/function")
    print(f"{'operator':24} {'all':>6} {'≥thr':>6} {'filtered':>8} {'planned(cap)':>12}")
    for op in sorted(total):
        print(f"{op:24} {total[op]:6} {passed[op]:6} {total[op] - passed[op]:8} {in_plan[op]:12}")
    before = procedural.plan(sources, coverage, args.n, args.seed, min_realism=0, max_per_function=0)
    after = procedural.plan(sources, coverage, args.n, args.seed)
    items = [("before", c) for c in before] + [("after", c) for c in after]
    random.Random(args.seed).shuffle(items)
    sample, key, md = [], {}, ["# Blind realism sample", "",
                               "For each: would it pass a reviewer as a subtle, realistic bug? (yes/no)", ""]
    for i, (side, c) in enumerate(items, 1):
        m = c.mutation
        entry = {"id": i, "target": c.target, "line": m.line, "diff": m.patch,
                 "function": _function_text(m.original, m.qualname)}
        sample.append(entry)
        key[str(i)] = {"side": side, "operator": m.operator, "realism": c.realism, "notes": c.realism_notes}
        md += [f"## {i}. `{c.target}` line {m.line}", "", "```diff", m.patch.rstrip(), "```", "",
               "<details><summary>function</summary>", "", "```python", entry["function"], "```", "</details>", ""]
    out.mkdir(parents=True, exist_ok=True)
    (out / "realism_sample.json").write_text(json.dumps(sample, indent=1))
    (out / "realism_sample.md").write_text("\n".join(md))
    (out / "realism_key.json").write_text(json.dumps(key, indent=1))
    print(f"wrote {len(items)} shuffled mutations to {out}/realism_sample.md (labels in realism_key.json)")


if __name__ == "__main__":
    main()
