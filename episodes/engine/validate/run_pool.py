"""Verifier runs of one bug, many at a time (plain Python, no Django).

A ``RunPool`` keeps up to ``workers`` prepared checkouts of the repository
(``WorkspaceFactory.reusable``) and runs the bug's verifier in them, on clean or buggy code,
resetting a checkout between runs instead of building a new worktree. Runs go in parallel
when ``workers`` > 1; their records are made in the caller's thread, in submission order,
so ``on_run`` (which saves rows) never runs concurrently.
"""
from __future__ import annotations

import queue
import random
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack


class RunPool:
    def __init__(self, validator, repo, bug, rng: random.Random, workers: int = 1):
        self.validator, self.repo, self.bug, self.rng = validator, repo, bug, rng
        self.workers = max(1, workers)
        self._stack = ExitStack()
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = ThreadPoolExecutor(self.workers) if self.workers > 1 else None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._threads is not None:
            self._threads.shutdown(wait=True)
        self._stack.close()

    def checkout(self):
        """An idle prepared checkout (a new one while fewer than ``workers`` exist)."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            factory = self.validator.workspaces
            return self._stack.enter_context(factory.reusable(self.repo.mirror, self.repo.commit))

    def release(self, checkout) -> None:
        self._idle.put(checkout)

    def _one(self, code: str, seed: int):
        checkout = self.checkout()
        try:
            path = checkout.prepare(patch=self.bug.patch if code == "buggy" else "")
            return self.validator.exec_verifier(self.repo, self.bug.verifier, path, seed=seed)
        finally:
            self.release(checkout)

    def run(self, codes: list[str], purpose: str) -> list:
        """One verifier run per entry of ``codes`` ("clean" or "buggy"), as RunRecords."""
        seeds = [self.rng.randrange(2**31) for _ in codes]
        if self._threads is None or len(codes) == 1:
            results = (self._one(code, seed) for code, seed in zip(codes, seeds))
        else:
            results = self._threads.map(self._one, codes, seeds)
        return [self.validator.verifier_record(result, code, purpose, seed)
                for code, seed, result in zip(codes, seeds, results)]
