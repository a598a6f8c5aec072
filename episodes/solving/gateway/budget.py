"""An episode's budget, enforced where every harness must pass: the gateway (no Django).

The built-in agent counts its own steps, but Claude Code and Codex do not obey ours (Codex has
no step limit at all; Claude Code's cost guard trusts its own price list). So the gateway keeps
a ledger per episode — steps, tokens and cost of the calls it has passed — and refuses the
call that would go past a limit, in the calling protocol's own error shape, without
forwarding it. The refusal is recorded like any call, with ``refused`` naming the limit, and
the episode's exit reason is read from it, whatever the harness then does.

A *step* is a completed generation (2xx, no error) of a request that offers tools: the
CLIs' side calls (titles, summaries: no tools) cost tokens and money but are not agent steps.

The same ledger fails fast when the upstream is down: after ``max_upstream_failures``
infrastructure failures in a row (the gateway could not reach it, it timed out, it answered
5xx or broke its stream) further calls are refused as ``upstream_down`` instead of letting a
CLI retry for minutes; the first failure's reason is kept for the episode's error.

Refusals are HTTP 400 (``invalid_request_error``): both CLIs retry 429 and 5xx answers and
give up at once on a 400.

Totals come from two places: ``Upstream.spent`` (the episode's row, as of the token lookup,
so a second gateway process or a restart starts from the truth) and the calls this process
has passed since; the ledger keeps the larger of each.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

REFUSAL_STATUS = 400
MAX_EPISODES = 10_000  # ledgers kept; the oldest go first
# Calls of one episode in flight at once. Their tokens and cost are known only once they
# finish, so without a cap an agent holding its token (it is in a CLI's environment) could fire
# a hundred calls at once and overshoot every budget a hundredfold; the ones over the cap get
# a 429 (retry later), which neither ends the episode nor counts as an upstream failure.
MAX_IN_FLIGHT = 8


@dataclass(frozen=True)
class Budget:
    max_steps: int | None = None
    max_tokens: int | None = None  # input + output, summed over calls
    max_cost_usd: float | None = None


@dataclass
class Spent:
    steps: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    failures_in_a_row: int = 0
    first_failure: str = ""
    in_flight: int = 0  # admitted, not yet finished
    steps_in_flight: int = 0  # of those, requests offering tools: each may become a step

    def merge(self, other: "Spent") -> None:
        self.steps = max(self.steps, other.steps)
        self.tokens = max(self.tokens, other.tokens)
        self.cost_usd = max(self.cost_usd, other.cost_usd)


def is_infrastructure_failure(call: dict) -> bool:
    """The upstream failed (not the agent): unreachable, timed out, 5xx, a broken stream."""
    status = call.get("status_code") or 0
    error = call.get("error") or ""
    if call.get("refused") or error == "client disconnected":
        return False
    return status >= 500 or (bool(error) and status < 400)


@dataclass
class Ledger:
    max_upstream_failures: int = 3
    _spent: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, episode_id, budget: Budget | None, recorded: Spent | None,
              offers_tools: bool = False) -> tuple[str, str] | None:
        """None when the episode's next call may go (it is then counted in flight until
        ``add``); else (reason, message): a limit, ``upstream_down``, or ``busy`` (too many
        calls in flight). A call offering tools reserves a step, so concurrent calls cannot
        all slip under the step limit."""
        if episode_id is None:
            return None
        with self._lock:
            spent = self._entry(episode_id)
            if recorded is not None:
                spent.merge(recorded)
            refusal = self._refusal(spent, budget, offers_tools)
            if refusal is None:
                spent.in_flight += 1
                spent.steps_in_flight += 1 if offers_tools else 0
            return refusal

    def _refusal(self, spent: Spent, budget: Budget | None, offers_tools: bool) -> tuple[str, str] | None:
        if self.max_upstream_failures and spent.failures_in_a_row >= self.max_upstream_failures:
            return "upstream_down", (
                f"the upstream failed {spent.failures_in_a_row} times in a row (first: {spent.first_failure}); "
                "this episode's calls are no longer forwarded")
        if budget is not None:
            steps = spent.steps + spent.steps_in_flight if offers_tools else spent.steps
            if budget.max_steps is not None and steps >= budget.max_steps:
                return "step_limit", f"step limit reached: {steps} of {budget.max_steps} model steps used or under way"
            if budget.max_tokens is not None and spent.tokens >= budget.max_tokens:
                return "token_limit", f"token limit reached: {spent.tokens} of {budget.max_tokens} tokens used"
            if budget.max_cost_usd is not None and spent.cost_usd >= budget.max_cost_usd:
                return "cost_limit", (f"cost limit reached: ${spent.cost_usd:.6f} of ${budget.max_cost_usd:.6f} spent")
        if spent.in_flight >= MAX_IN_FLIGHT:
            return "busy", f"{spent.in_flight} calls of this episode are already in flight: retry when one finishes"
        return None

    def add(self, episode_id, call: dict, admitted: bool | None) -> None:
        """Count a call ``admit`` let through (``admitted``: whether it offered tools) and end its
        time in flight. Calls that were not admitted (None) are not counted."""
        if episode_id is None or admitted is None:
            return
        with self._lock:
            spent = self._entry(episode_id)
            spent.in_flight = max(0, spent.in_flight - 1)
            spent.steps_in_flight = max(0, spent.steps_in_flight - (1 if admitted else 0))
            spent.steps += 1 if call.get("step") else 0
            spent.tokens += (call.get("tokens_in") or 0) + (call.get("tokens_out") or 0)
            spent.cost_usd += call.get("cost_usd") or 0.0
            if is_infrastructure_failure(call):
                if not spent.failures_in_a_row:
                    spent.first_failure = call.get("error") or f"HTTP {call.get('status_code')}"
                spent.failures_in_a_row += 1
            elif call.get("status_code") and call["status_code"] < 500:
                spent.failures_in_a_row, spent.first_failure = 0, ""

    def _entry(self, episode_id) -> Spent:
        spent = self._spent.get(episode_id)
        if spent is None:
            if len(self._spent) >= MAX_EPISODES:
                del self._spent[next(iter(self._spent))]
            spent = self._spent[episode_id] = Spent()
        return spent
