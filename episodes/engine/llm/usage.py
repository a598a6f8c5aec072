"""Token usage of one model reply, and what it costs (plain Python, no Django).

One reader of every protocol's ``usage`` block and one price rule for the whole project (the
LLM client, the recording gateway, the CLI runner, the log importers and the figures all use
these)::

    usage = usage_of("anthropic", body)      # Usage(tokens_in, tokens_out, cache_read, cache_write)
    usage = read_usage("openai_responses", event["usage"])   # a usage block found elsewhere
    usd = Prices(3, 15).cost(usage)

``tokens_in`` counts every input token, cached ones included (so the token limits read one
number whatever the provider); ``cache_read`` and ``cache_write`` are the parts of it served
from or written to the provider's prompt cache, priced apart: a cache-heavy teacher (Claude
Code re-sends a long, cached prompt on every call) would otherwise be charged several times
what it really cost. Where a price for the cache is not set, the provider's published ratio to
the input price applies: Anthropic reads at 0.1× and writes (5-minute cache) at 1.25×; OpenAI
reads cached input at 0.1× (GPT-5 family) and charges nothing extra to write (1×).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

# (cache read, cache write) as multiples of the input price, by provider family (published
# price lists, 2025-26). OpenAI reports no cache writes: were one counted, it is plain input.
CACHE_RATIOS = {"anthropic": (Decimal("0.1"), Decimal("1.25")), "openai": (Decimal("0.1"), Decimal(1))}


def _int(value) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class Usage:
    tokens_in: int = 0  # all input tokens, cached ones included
    tokens_out: int = 0
    cache_read: int = 0  # of tokens_in: read from the prompt cache
    cache_write: int = 0  # of tokens_in: written to the prompt cache

    @property
    def uncached_in(self) -> int:
        return max(0, self.tokens_in - self.cache_read - self.cache_write)


def usage_of(protocol: str, body) -> Usage:
    """The usage of a response body in the protocol's non-streaming shape (zeros if absent)."""
    return read_usage(protocol, body.get("usage") if isinstance(body, dict) else None)


def read_usage(protocol: str, usage) -> Usage:
    """A ``usage`` block itself, wherever it was found (a response body, a CLI's event or
    session log: Claude Code's are Anthropic's, Codex's the Responses API's); zeros if absent."""
    if not isinstance(usage, dict):
        return Usage()
    if protocol == "anthropic":  # input_tokens excludes the cached parts
        read, write = _int(usage.get("cache_read_input_tokens")), _int(usage.get("cache_creation_input_tokens"))
        return Usage(_int(usage.get("input_tokens")) + read + write, _int(usage.get("output_tokens")), read, write)
    if protocol == "openai_chat":  # prompt_tokens includes the cached part
        details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
        return Usage(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")),
                     _int(details.get("cached_tokens")))
    # Responses: input_tokens includes the cached part (the Codex CLI flattens it to cached_input_tokens)
    details = usage.get("input_tokens_details") if isinstance(usage.get("input_tokens_details"), dict) else {}
    return Usage(_int(usage.get("input_tokens")), _int(usage.get("output_tokens")),
                 _int(details.get("cached_tokens", usage.get("cached_input_tokens"))))


@dataclass(frozen=True)
class Prices:
    """USD per million tokens. A cache price of None means the provider's published ratio."""

    usd_per_mtok_in: Decimal | float = 0
    usd_per_mtok_out: Decimal | float = 0
    usd_per_mtok_cache_read: Decimal | float | None = None
    usd_per_mtok_cache_write: Decimal | float | None = None
    family: str = "openai"  # "anthropic" | "openai": whose cache ratios apply by default

    def per_mtok(self) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(input, output, cache read, cache write) prices as Decimals, defaults filled in."""
        price_in, price_out = Decimal(str(self.usd_per_mtok_in or 0)), Decimal(str(self.usd_per_mtok_out or 0))
        read_ratio, write_ratio = CACHE_RATIOS.get(self.family, CACHE_RATIOS["openai"])
        read = price_in * read_ratio if self.usd_per_mtok_cache_read is None else Decimal(str(self.usd_per_mtok_cache_read))
        write = (price_in * write_ratio if self.usd_per_mtok_cache_write is None
                 else Decimal(str(self.usd_per_mtok_cache_write)))
        return price_in, price_out, read, write

    def cost(self, usage: Usage) -> float:
        price_in, price_out, read, write = self.per_mtok()
        usd = (price_in * usage.uncached_in + price_out * usage.tokens_out + read * usage.cache_read
               + write * usage.cache_write)
        return float(usd / Decimal(1_000_000))


def family_of(protocol: str) -> str:
    return "anthropic" if protocol == "anthropic" else "openai"
