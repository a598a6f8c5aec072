"""Seeded sampling that spreads the picks over operators and functions."""
from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Iterator

from episodes.engine.inject.mutators.core import Mutation


def sample(mutations: list[Mutation], k: int, seed: int) -> list[Mutation]:
    """Up to ``k`` of ``mutations``, chosen with ``seed`` (the first ``k`` of ``spread``)."""
    return list(itertools.islice(spread(mutations, seed), k))


def spread(mutations: list[Mutation], seed: int) -> Iterator[Mutation]:
    """``mutations`` in a seeded order that spreads over operators and functions, lazily: a
    caller that filters as it goes (realism, a per-function cap) pays only for what it reads.

    Operators take turns (in a seeded order each round); each turn picks, among that operator's
    functions, one that has been picked least so far overall, then a random mutation in it.
    The same input and seed always give the same output, whatever the input order.
    """
    rng = random.Random(seed)
    ordered = sorted(mutations, key=lambda m: (m.operator, m.path, m.qualname, m.line, m.description, m.mutated))
    buckets: dict[str, dict[tuple[str, str], list[Mutation]]] = defaultdict(lambda: defaultdict(list))
    for m in ordered:
        buckets[m.operator][(m.path, m.qualname)].append(m)
    used: dict[tuple[str, str], int] = defaultdict(int)
    while buckets:
        operators = sorted(buckets)
        rng.shuffle(operators)
        for op in operators:
            functions = buckets[op]
            fewest = min(used[f] for f in functions)
            candidates = sorted(f for f in functions if used[f] == fewest)
            function = rng.choice(candidates)
            pool = functions[function]
            chosen = pool.pop(rng.randrange(len(pool)))
            used[function] += 1
            if not pool:
                del functions[function]
            if not functions:
                del buckets[op]
            yield chosen
