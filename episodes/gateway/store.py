"""The gateway's Django side: tokens resolve to the episode's endpoint, calls become LLMCall rows.

The ORM is synchronous, so both hooks run on a small pool of threads of their own (each keeps
its database connection open between calls, so a lookup is one query, not a reconnect); the
event loop only awaits them. ``close()`` closes those connections.

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

from .core import Upstream

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
        episode_id=episode.pk, endpoint_id=endpoint.pk,
    )


def record_call(call: dict) -> int | None:
    """Store one call as the episode's next LLMCall and add it to the episode's totals.

    The episode row is updated first: the UPDATE locks it until the transaction ends, so
    concurrent calls of one episode take their sequence numbers one after another (numbers
    follow the order in which calls finished). Returns the new row's id (None: episode gone)."""
    from episodes.models import Episode, LLMCall

    cost = Decimal(str(call["cost_usd"])).quantize(Decimal("0.000001"))
    with transaction.atomic():
        updated = Episode.objects.filter(pk=call["episode_id"]).update(
            tokens_in=F("tokens_in") + call["tokens_in"], tokens_out=F("tokens_out") + call["tokens_out"],
            cost_usd=F("cost_usd") + cost, steps=F("steps") + (1 if call["step"] else 0),
        )
        if not updated:
            log.warning("episode %s is gone; its gateway call is not recorded", call["episode_id"])
            return None
        last = LLMCall.objects.filter(episode_id=call["episode_id"]).aggregate(m=Max("sequence"))["m"] or 0
        row = LLMCall.objects.create(
            episode_id=call["episode_id"], endpoint_id=call["endpoint_id"], protocol=call["protocol"],
            path=call["path"], streamed=call["streamed"], sequence=last + 1, request=call["request"],
            response=call["response"], raw_stream=call["raw_stream"], status_code=call["status_code"],
            error=call["error"], tokens_in=call["tokens_in"], tokens_out=call["tokens_out"], cost_usd=cost,
            latency_ms=call["latency_ms"], ttfb_ms=call["ttfb_ms"],
        )
    return row.pk


def _retrying(fn, *args):
    """Run ``fn`` once more on a fresh connection if the kept one went stale (database restart)."""
    try:
        return fn(*args)
    except (InterfaceError, OperationalError):
        if connection.in_atomic_block:
            raise
        connection.close()
        return fn(*args)


class DjangoStore:
    """``resolve`` and ``record`` hooks for ``GatewayApp`` over the Django ORM."""

    def __init__(self, threads: int = 4, token_cache_s: float = 2.0):
        self.threads = threads
        self.token_cache_s = token_cache_s
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._live: dict[str, tuple[float, Upstream]] = {}  # token -> (valid until, upstream)

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
        await asyncio.get_running_loop().run_in_executor(self._executor(), _retrying, record_call, call)

    def close(self) -> None:
        """Close every pool thread's database connection, then the pool. A barrier makes each of
        the pool's threads take exactly one of the closing tasks."""
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
