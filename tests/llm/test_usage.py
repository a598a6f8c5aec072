"""Token usage and prices: cache reads and writes are priced apart, with the providers'
published ratios when the endpoint sets no cache price."""
from decimal import Decimal

import pytest

from episodes.engine.llm.usage import Prices, Usage, read_usage, usage_of

# Claude Code's typical call: a long system prompt and tool list read from the cache.
ANTHROPIC_CACHED = {"usage": {"input_tokens": 12, "cache_read_input_tokens": 20_000,
                              "cache_creation_input_tokens": 1_000, "output_tokens": 300}}


def test_each_protocol_reports_all_input_tokens_and_the_cached_part():
    assert usage_of("anthropic", ANTHROPIC_CACHED) == Usage(21_012, 300, cache_read=20_000, cache_write=1_000)
    chat = {"usage": {"prompt_tokens": 5_000, "completion_tokens": 40, "prompt_tokens_details": {"cached_tokens": 4_096}}}
    assert usage_of("openai_chat", chat) == Usage(5_000, 40, cache_read=4_096)
    responses = {"usage": {"input_tokens": 9_000, "output_tokens": 70, "input_tokens_details": {"cached_tokens": 8_000}}}
    assert usage_of("openai_responses", responses) == Usage(9_000, 70, cache_read=8_000)
    assert usage_of("anthropic", {"usage": "junk"}) == Usage() == usage_of("openai_chat", None)


def test_a_usage_block_found_outside_a_response_body_reads_the_same():
    # Claude Code's result event and session log carry Anthropic's block; the Codex CLI flattens
    # the Responses API's cached part to cached_input_tokens (input_tokens includes it)
    assert read_usage("anthropic", ANTHROPIC_CACHED["usage"]) == usage_of("anthropic", ANTHROPIC_CACHED)
    codex = {"input_tokens": 9_000, "cached_input_tokens": 8_000, "output_tokens": 70, "reasoning_output_tokens": 5}
    assert read_usage("openai_responses", codex) == Usage(9_000, 70, cache_read=8_000)
    assert read_usage("openai_responses", None) == Usage() == read_usage("anthropic", {"input_tokens": "junk"})


def test_the_cli_runner_and_the_importers_count_tokens_with_the_one_reader():
    from episodes.engine.trajectories.importers import codex
    from episodes.engine.solve.runners.external import summarize_events

    result = {"type": "result", "subtype": "success", "result": "done", "num_turns": 2, **ANTHROPIC_CACHED}
    summary = summarize_events("claude_code", [result])
    assert (summary["tokens_in"], summary["tokens_out"]) == (21_012, 300)
    turn = {"type": "turn.completed", "usage": {"input_tokens": 900, "cached_input_tokens": 800, "output_tokens": 7}}
    summary = summarize_events("codex", [turn, turn])
    assert (summary["tokens_in"], summary["tokens_out"], summary["turns"]) == (1_800, 14, 2)
    meta: dict = {}
    codex._event({"type": "token_count", "info": {"total_token_usage": turn["usage"]}}, meta)
    assert (meta["tokens_in"], meta["tokens_out"]) == (900, 7)


def test_anthropic_cache_is_priced_at_its_published_ratios():
    # Sonnet: $3 in, $15 out; cache reads 0.1×, 5-minute cache writes 1.25× the input price.
    usd = Prices(3, 15, family="anthropic").cost(usage_of("anthropic", ANTHROPIC_CACHED))
    expected = (12 * 3 + 20_000 * 0.3 + 1_000 * 3.75 + 300 * 15) / 1e6
    assert usd == pytest.approx(expected)
    naive = (21_012 * 3 + 300 * 15) / 1e6  # every input token at the full price: what was stored before
    assert naive / usd > 4


def test_explicit_cache_prices_win_and_openai_writes_cost_plain_input():
    usage = Usage(10_000, 0, cache_read=8_000, cache_write=1_000)
    assert Prices(Decimal("2"), 0, Decimal("0.5"), Decimal("2.5"), family="anthropic").cost(usage) == pytest.approx(
        (1_000 * 2 + 8_000 * 0.5 + 1_000 * 2.5) / 1e6)
    assert Prices(2, 0, family="openai").cost(usage) == pytest.approx((1_000 * 2 + 8_000 * 0.2 + 1_000 * 2) / 1e6)


def test_an_uncached_call_costs_what_it_always_did():
    assert Prices(3, 15, family="anthropic").cost(Usage(1_000_000, 1_000_000)) == pytest.approx(18)
