"""The gateway's database side on its own: batched records, sequence numbers, totals, and a
call that cannot be stored not costing the others theirs."""
import asyncio
import threading
from decimal import Decimal

import pytest
from django.db import IntegrityError

from episodes.solving.gateway.store import DjangoStore, _Writer, record_calls
from episodes.models import Episode, LLMCall


def in_own_thread(fn):
    """Run ``fn`` on a fresh thread: a session-wide Playwright browser keeps an event loop
    running on the main thread, where asyncio.run() would refuse to start another."""
    outcome = {}

    def target():
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # handed back to the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def call(episode, tokens_in, step=True, **kw):
    base = dict(episode_id=episode.pk, endpoint_id=episode.teacher.endpoint_id, protocol="anthropic",
                path="/v1/messages", streamed=False, request={"n": tokens_in}, response={}, raw_stream="",
                status_code=200, error="", tokens_in=tokens_in, tokens_out=1, cost_usd=0.5, latency_ms=1.0,
                ttfb_ms=1.0, step=step)
    base.update(kw)
    return base


def test_a_batch_numbers_each_episode_in_order_and_adds_to_its_totals(make_episode):
    a, _ = make_episode()
    b, _ = make_episode()
    record_calls([call(a, 1)])
    ids = record_calls([call(b, 2), call(a, 3), call(a, 4, step=False), call(b, 5)])
    assert all(ids)
    assert [(c.sequence, c.request["n"]) for c in LLMCall.objects.filter(episode=a).order_by("sequence")] == [
        (1, 1), (2, 3), (3, 4)]
    assert [c.sequence for c in LLMCall.objects.filter(episode=b).order_by("sequence")] == [1, 2]
    a.refresh_from_db()
    assert (a.tokens_in, a.tokens_out, a.cost_usd, a.steps) == (8, 3, Decimal("1.5"), 2)


def test_calls_of_a_deleted_episode_are_skipped(make_episode):
    a, _ = make_episode()
    gone, _ = make_episode()
    gone_call = call(gone, 7)
    Episode.objects.filter(pk=gone.pk).delete()
    assert record_calls([gone_call, call(a, 1)])[0] is None
    assert LLMCall.objects.filter(episode=a).count() == 1


def test_an_unstorable_call_does_not_cost_the_batch(make_episode):
    a, _ = make_episode()
    bad = call(a, 2, endpoint_id=10**9)  # no such endpoint: the foreign key fails at commit
    with pytest.raises(IntegrityError):
        record_calls([call(a, 1), bad])
    assert not LLMCall.objects.filter(episode=a).exists()  # one transaction

    def write_three():
        loop = asyncio.new_event_loop()
        try:
            futures = [loop.create_future() for _ in range(3)]
            _Writer()._write(list(zip([call(a, 1), bad, call(a, 3)], [loop] * 3, futures)))
            loop.run_until_complete(asyncio.wait(futures))
            return futures
        finally:
            loop.close()

    futures = in_own_thread(write_three)
    assert futures[0].result() and futures[2].result()
    assert isinstance(futures[1].exception(), IntegrityError)
    assert [c.request["n"] for c in LLMCall.objects.filter(episode=a).order_by("sequence")] == [1, 3]


def test_store_records_concurrent_calls_and_closes_cleanly(make_episode):
    a, _ = make_episode()
    store = DjangoStore(threads=2)

    async def many():
        await asyncio.gather(*(store.record(call(a, n)) for n in range(1, 21)))

    in_own_thread(lambda: asyncio.run(many()))
    store.close()
    rows = list(LLMCall.objects.filter(episode=a).order_by("sequence"))
    assert [r.sequence for r in rows] == list(range(1, 21))
    assert sorted(r.request["n"] for r in rows) == list(range(1, 21))
    in_own_thread(lambda: asyncio.run(many()))  # a closed store serves again
    store.close()
    assert LLMCall.objects.filter(episode=a).count() == 40
