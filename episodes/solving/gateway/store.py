"""The gateway's Django side: tokens resolve to the episode's endpoint, calls become LLMCall rows.

The ORM is synchronous, so the hooks run on threads of their own, which keep their database
connections open between calls (a lookup is one query, not a reconnect); the event loop only
awaits them. Token lookups use a small pool; records go to one writer thread that stores the
calls waiting for it in one transaction, so many concurrent calls share a commit while a lone
call is written at once. ``close()`` writes what is waiting and closes the connections.

A live token's upstream is remembered for ``token_cache_s`` seconds (default 2), so an agent's
calls after its first skip the database lookup: the only database work left on a call's path.
The price: a token keeps working for up to that long after its episode has ended (unknown
and ended tokens are never remembered, so they are refused at once).
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Max

from episodes.solving.gateway.budget import Spent
from episodes.solving.gateway.core import Upstream

log = logging.getLogger("bugforge.gateway")


def resolve_token(token: str) -> Upstream | None:
    """The upstream of the live episode that owns ``token`` (None: unknown, over, or no endpoint)."""
    from episodes.models import Episode

    episode = Episode.objects.by_gateway_token(token)
    if episode is None or episode.teacher.endpoint is None:
        return None
    endpoint = episode.teacher.endpoint
    return Upstream(
        protocol=endpoint.protocol, base_url=endpoint.base_url, api_key=endpoint.api_key, model=endpoint.model,
        usd_per_mtok_in=endpoint.usd_per_mtok_in, usd_per_mtok_out=endpoint.usd_per_mtok_out,
        usd_per_mtok_cache_read=endpoint.usd_per_mtok_cache_read,
        usd_per_mtok_cache_write=endpoint.usd_per_mtok_cache_write,
        episode_id=episode.pk, endpoint_id=endpoint.pk, budget=episode.teacher.budget(),
        spent=Spent(steps=episode.steps, tokens=episode.tokens_in + episode.tokens_out, cost_usd=float(episode.cost_usd)),
    )


def _cost(call: dict) -> Decimal:
    return Decimal(str(call["cost_usd"])).quantize(Decimal("0.000001"))


def record_calls(calls: list[dict]) -> list[int | None]:
    """Store calls as LLMCall rows, in one transaction, and add them to their episodes' totals.
    Returns each call's row id (None: its episode is gone).

    Each episode's row is updated first: the UPDATE locks it until the transaction ends, so
    concurrent writers (threads, gateway processes) take an episode's sequence numbers one
    after another; episodes are locked in id order, so two writers never deadlock. Within an
    episode, numbers follow the order in which the calls finished."""
    from episodes.models import Episode, LLMCall

    by_episode: dict[int, list[int]] = {}
    for i, call in enumerate(calls):
        by_episode.setdefault(call["episode_id"], []).append(i)
    rows, positions = [], []
    with transaction.atomic():
        for episode_id in sorted(by_episode):
            group = [calls[i] for i in by_episode[episode_id]]
            updated = Episode.objects.filter(pk=episode_id).update(
                tokens_in=F("tokens_in") + sum(c["tokens_in"] for c in group),
                tokens_out=F("tokens_out") + sum(c["tokens_out"] for c in group),
                cost_usd=F("cost_usd") + sum((_cost(c) for c in group), Decimal(0)),
                steps=F("steps") + sum(1 for c in group if c["step"]),
            )
            if not updated:
                log.warning("episode %s is gone; %d gateway call(s) not recorded", episode_id, len(group))
                continue
            last = LLMCall.objects.filter(episode_id=episode_id).aggregate(m=Max("sequence"))["m"] or 0
            for n, (i, call) in enumerate(zip(by_episode[episode_id], group), start=1):
                positions.append(i)
                rows.append(LLMCall(
                    episode_id=episode_id, endpoint_id=call["endpoint_id"], protocol=call["protocol"],
                    path=call["path"], streamed=call["streamed"], sequence=last + n, request=call["request"],
                    response=call["response"], raw_stream=call["raw_stream"], status_code=call["status_code"],
                    error=call["error"], tokens_in=call["tokens_in"], tokens_out=call["tokens_out"],
                    cache_read=call.get("cache_read") or 0, cache_write=call.get("cache_write") or 0,
                    refused=call.get("refused") or "",
                    cost_usd=_cost(call), latency_ms=call["latency_ms"], ttfb_ms=call["ttfb_ms"],
                ))
        created = LLMCall.objects.bulk_create(rows)
    ids: list[int | None] = [None] * len(calls)
    for i, row in zip(positions, created):
        ids[i] = row.pk
    return ids


def record_call(call: dict) -> int | None:
    """Store one call (see ``record_calls``)."""
    return record_calls([call])[0]


def _retrying(fn, *args):
    """Run ``fn`` once more on a fresh connection if the kept one went stale (database restart)."""
    try:
        return fn(*args)
    except (InterfaceError, OperationalError):
        if connection.in_atomic_block:
            raise
        connection.close()
        return fn(*args)


class _Writer:
    """One thread that writes the calls waiting for it in one transaction (up to ``max_batch``):
    one call at a time when calls come one by one, many per commit when they come at once."""

    def __init__(self, max_batch: int = 200):
        self.max_batch = max_batch
        self._waiting: list[tuple[dict, asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def submit(self, call: dict, loop: asyncio.AbstractEventLoop, future: asyncio.Future) -> None:
        with self._wake:
            self._waiting.append((call, loop, future))
            if self._thread is None:
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name="gateway-recorder", daemon=True)
                self._thread.start()
            self._wake.notify()

    def stop(self) -> None:
        """Write what is waiting, then end the thread (a later ``submit`` starts a new one)."""
        with self._wake:
            thread, self._stopping = self._thread, True
            self._wake.notify()
        if thread is not None:
            thread.join(timeout=60)

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    while not self._waiting and not self._stopping:
                        self._wake.wait()
                    if not self._waiting:
                        self._thread = None
                        return
                    batch = self._waiting[: self.max_batch]
                    del self._waiting[: self.max_batch]
                self._write(batch)
        finally:
            connection.close()

    def _write(self, batch) -> None:
        calls = [call for call, _, _ in batch]
        try:
            outcomes = [(True, pk) for pk in _retrying(record_calls, calls)]
        except Exception as exc:
            if len(calls) == 1:
                outcomes = [(False, exc)]
            else:  # one unstorable call must not cost the others theirs
                outcomes = []
                for call in calls:
                    try:
                        outcomes.append((True, _retrying(record_calls, [call])[0]))
                    except Exception as one:
                        outcomes.append((False, one))
        for (ok, value), (_, loop, future) in zip(outcomes, batch):
            try:
                loop.call_soon_threadsafe(_settle, future, ok, value)
            except RuntimeError:  # the caller's loop is gone: nobody is waiting
                pass


def _settle(future: asyncio.Future, ok: bool, value) -> None:
    if not future.done():
        future.set_result(value) if ok else future.set_exception(value)


class DjangoStore:
    """``resolve`` and ``record`` hooks for ``GatewayApp`` over the Django ORM. Lookups run on a
    small thread pool; records go to one writer thread that batches what arrives together."""

    def __init__(self, threads: int = 4, token_cache_s: float = 2.0):
        self.threads = threads
        self.token_cache_s = token_cache_s
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._live: dict[str, tuple[float, Upstream]] = {}  # token -> (valid until, upstream)
        self._writer = _Writer()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:  # (re)created on demand, so a closed store can serve again
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="gateway-db")
            return self._pool

    async def resolve(self, token: str) -> Upstream | None:
        now = time.monotonic()
        cached = self._live.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        upstream = await asyncio.get_running_loop().run_in_executor(
            self._executor(), _retrying, resolve_token, token)
        if upstream is not None and self.token_cache_s > 0:
            if len(self._live) > 10_000:  # forget the expired ones now and then
                self._live = {t: v for t, v in self._live.items() if v[0] > now}
            self._live[token] = (now + self.token_cache_s, upstream)
        return upstream

    async def record(self, call: dict) -> None:
        """Returns once the call is stored (or raises why it could not be)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._writer.submit(call, loop, future)
        await future

    def close(self) -> None:
        """Write the calls still waiting, then close every thread's database connection. A
        barrier makes each of the pool's threads take exactly one of the closing tasks."""
        self._writer.stop()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        started = len(pool._threads)  # threads are started lazily, up to ``threads``
        if started:
            barrier = threading.Barrier(started)

            def close_here():
                try:
                    barrier.wait(timeout=10)
                except threading.BrokenBarrierError:
                    pass
                connection.close()

            for _ in range(started):
                pool.submit(close_here)
        pool.shutdown(wait=True)
