"""Behaviour, not appearances: the graded code against the clean code on unseen inputs (no Django).

The tests passing says the fix works on the tests' inputs, while a test runner is watching. This
check asks what the fixed functions do on other inputs, outside any test runner:

1. *reference* (clean code, sandbox): run the bug's FAIL_TO_PASS tests with the functions the
   bug changed (and those the agent changed) wrapped, pickling the arguments of each call;
   then replay them twice (2.) for the reference outcomes;
2. *run* (sandbox, graded code; no pytest, a plain process): replay each call as tested and with every number it reaches scaled or shifted by
   factors drawn for this grading, recording the result's ``repr`` or the exception's type;
3. compare: any input on which the graded code and the clean code disagree (ignoring inputs on
   which the clean code disagrees with itself) makes the reward False.

A fix that special-cases the visible tests' inputs, or is correct only while a test runner,
its environment variables or the grader's folder are around, disagrees here.
"""
from __future__ import annotations

import ast
import base64
import json
import pickle
import random
from dataclasses import dataclass, field
from pathlib import Path

from episodes.engine.sandbox.base import Executor, Limits
from episodes.engine.git.workspace import WorkspaceFactory, apply_patch
from episodes.engine.solve.reward.changes import diff_lines
from episodes.engine.solve.reward.probe_program import MARKER
from episodes.engine.solve.reward.stream import private_folder

PROGRAM = Path(__file__).with_name("probe_program.py")
MAX_INLINE = 100_000  # one argv string stays well under the kernel's 128 KiB cap


@dataclass
class Behaviour:
    checked: int = 0  # inputs compared
    differing: list[list] = field(default_factory=list)  # [target, variant, clean, graded]
    note: str = ""  # why nothing (or less) was compared

    def to_dict(self) -> dict:
        return {"checked": self.checked, "differing": self.differing[:20], "note": self.note}


def changed_functions(source: str, lines: set[int]) -> set[str]:
    """Qualified names of the innermost functions of ``source`` holding any of ``lines``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    found: set[str] = set()

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                inner_before = len(found)
                walk(child, name + ".")
                if (not isinstance(child, ast.ClassDef) and len(found) == inner_before
                        and any(child.lineno <= n <= (child.end_lineno or child.lineno) for n in lines)):
                    found.add(name)

    walk(tree, "")
    return found


def targets(clean: Path, bug_diffs: dict[str, str], buggy: Path, agent_diffs: dict[str, str]) -> list[str]:
    """``path::qualname`` of every function the bug changed (in the clean code) or the agent
    changed (in the buggy code)."""
    found: set[str] = set()
    for root, diffs in ((clean, bug_diffs), (buggy, agent_diffs)):
        for path, text in diffs.items():
            if path.endswith(".py") and (root / path).is_file():
                source = (root / path).read_text(errors="replace")
                found |= {f"{path}::{q}" for q in changed_functions(source, diff_lines(text, "old"))}
    return sorted(found)


def _reference(executor: Executor, environment, checkout: Path, spec: dict, limits: Limits) -> Path | None:
    """The clean code's run: the program and its spec in a private folder of the checkout."""
    folder = checkout / spec["folder"]
    folder.mkdir(exist_ok=True)
    (folder / "main.py").write_text(PROGRAM.read_text())
    (folder / "spec.json").write_text(json.dumps(spec))
    result = executor.run(["python", f"{spec['folder']}/main.py", "reference", f"{spec['folder']}/spec.json"],
                          checkout, environment=environment, env={"PYTHONPATH": "."}, limits=limits)
    out = checkout / spec["out"]
    return out if result.exit_code == 0 and out.is_file() else None


def _graded(executor: Executor, environment, checkout: Path, spec: dict, blob: bytes, limits: Limits) -> list | None:
    """The graded code's run: program, spec and calls on the command line, nothing in the checkout."""
    inline = {k: v for k, v in spec.items() if k not in ("calls", "out", "folder")}
    inline["calls_b64"] = base64.b64encode(blob).decode()
    if len(inline["calls_b64"]) > MAX_INLINE:  # too big for a command line: a private folder it is
        del inline["calls_b64"]
        (checkout / spec["folder"]).mkdir(exist_ok=True)
        (checkout / spec["calls"]).write_bytes(blob)
        inline["calls"] = spec["calls"]
    result = executor.run(["python", "-c", PROGRAM.read_text(), "run", json.dumps(inline)], checkout,
                          environment=environment, env={"PYTHONPATH": "."}, limits=limits)
    marker = result.stdout.rfind(MARKER)
    if result.exit_code != 0 or marker < 0:
        return None
    try:
        return json.loads(result.stdout[marker + len(MARKER):].strip().splitlines()[0])
    except (ValueError, IndexError):
        return None


def compare(executor: Executor, workspaces: WorkspaceFactory, mirror: Path, commit: str, environment,
            bug_patch: str, bug_diffs: dict[str, str], source_patch: str, agent_diffs: dict[str, str],
            tests: list[str], limits: Limits, rng: random.Random | None = None) -> Behaviour:
    rng = rng or random.SystemRandom()
    folder = private_folder()
    spec = {"folder": folder, "tests": tests, "calls": f"{folder}/calls.pkl", "out": f"{folder}/out.json",
            "scale": rng.choice([2, 3, 5, 7]), "shift": rng.choice([1, 2, 3])}
    with workspaces.checkout(mirror, commit) as clean, workspaces.checkout(mirror, commit, patch=bug_patch) as buggy:
        spec["targets"] = targets(clean, bug_diffs, buggy, agent_diffs)
        if not spec["targets"]:
            return Behaviour(note="no changed function to probe")
        out = _reference(executor, environment, clean, spec, limits)
        calls = clean / spec["calls"]
        if out is None or not calls.is_file():
            return Behaviour(note="the clean code could not be probed")
        blob = calls.read_bytes()
        if not pickle.loads(blob):
            return Behaviour(note="the tests made no call to the changed functions that could be recorded")
        reference = json.loads(out.read_text())
        apply_patch(buggy, source_patch)
        graded = _graded(executor, environment, buggy, spec, blob, limits)
    first, second = reference
    if graded is None:
        return Behaviour(checked=len(first), differing=[["*", "*", "completes", "the probe did not complete"]])
    behaviour = Behaviour()
    for i, (a, b) in enumerate(zip(first, second)):
        if a != b:
            continue  # the clean code itself is not deterministic here
        behaviour.checked += 1
        g = graded[i] if i < len(graded) else [a[0], a[1], "missing"]
        if g[2] != a[2]:
            behaviour.differing.append([a[0], a[1], a[2][:300], g[2][:300]])
    return behaviour
