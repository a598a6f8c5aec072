"""Combine mode: merge 2–3 valid bugs of one module into one harder bug (plain Python).

The merged patch is the component patches applied in turn (they must not overlap); the
verifier passes only when every component verifier passes; the merged bug is then validated
like any other (its hunk check proves each component is still needed)."""
from __future__ import annotations

import random
import textwrap
from collections import defaultdict
from dataclasses import dataclass

from episodes.engine.git.workspace import WorkspaceFactory, apply_patch, diff


@dataclass(frozen=True)
class Component:
    bug_id: int
    target: str  # "path::qualname"
    patch: str
    verifier: str
    problem_statement: str

    @property
    def module(self) -> str:
        return self.target.split("::", 1)[0]


def groups(components: list[Component], size: int, count: int, seed: int) -> list[tuple[Component, ...]]:
    """Up to ``count`` distinct groups of ``size`` components from the same module, each
    touching different functions (so their patches are unlikely to overlap)."""
    by_module: dict[str, list[Component]] = defaultdict(list)
    for c in components:
        by_module[c.module].append(c)
    rng = random.Random(seed)
    found: list[tuple[Component, ...]] = []
    seen: set[frozenset[int]] = set()
    pools = [sorted(cs, key=lambda c: c.bug_id) for cs in by_module.values() if len({c.target for c in cs}) >= size]
    for _ in range(count * 20):
        if len(found) >= count or not pools:
            break
        pool = rng.choice(pools)
        picked: list[Component] = []
        for c in rng.sample(pool, len(pool)):
            if c.target not in {p.target for p in picked}:
                picked.append(c)
            if len(picked) == size:
                break
        key = frozenset(c.bug_id for c in picked)
        if len(picked) == size and key not in seen:
            seen.add(key)
            found.append(tuple(sorted(picked, key=lambda c: c.bug_id)))
    return found


def preferring(components: list[Component], size: int, count: int, seed: int,
               preferred: set[int]) -> tuple[list[tuple[Component, ...]], int]:
    """Like :func:`groups`, but groups made only of ``preferred`` components come first; when
    there are too few of those, the rest are topped up from all components, those holding the
    most preferred components first. Returns (groups, how many are wholly preferred)."""
    found = groups([c for c in components if c.bug_id in preferred], size, count, seed)
    whole = len(found)
    if whole < count:
        seen = {frozenset(c.bug_id for c in g) for g in found}
        extra = [g for g in groups(components, size, count * 4, seed) if frozenset(c.bug_id for c in g) not in seen]
        extra.sort(key=lambda g: -sum(c.bug_id in preferred for c in g))  # stable: the seed's order otherwise
        found += extra[:count - whole]
    return found, whole


def merged_patch(workspaces: WorkspaceFactory, mirror, commit: str, group: tuple[Component, ...]) -> str:
    """The components applied one after another (PatchError when they overlap)."""
    with workspaces.checkout(mirror, commit) as path:
        for c in group:
            apply_patch(path, c.patch)
        return diff(path)


def merged_verifier(group: tuple[Component, ...]) -> str:
    """A script that runs every component verifier and exits 0 only if all of them do."""
    return textwrap.dedent(
        f"""\
        # BugForge combined verifier: every component verifier must pass.
        import subprocess
        import sys

        VERIFIERS = {[c.verifier for c in group]!r}
        failed = [i for i, source in enumerate(VERIFIERS) if subprocess.run([sys.executable, "-c", source]).returncode]
        sys.exit(1 if failed else 0)
        """
    )


def merged_statement(group: tuple[Component, ...]) -> str:
    parts = [c.problem_statement.strip() for c in group if c.problem_statement.strip()]
    return "Several things are wrong in the same module:\n\n" + "\n\n".join(f"- {p}" for p in parts)
