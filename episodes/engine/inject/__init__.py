"""Inject (no Django): procedural planning over LibCST mutators (`procedural.py`, `mutators/`), LLM
modify/rewrite/feature removal (`llm_injector.py` with `splice.py` and `reply.py`,
`feature_removal.py`), combine, history, issue text, the self-play controller. Each turns a function
of a repository into a candidate bug — a patch, a verifier and a problem statement — for the
validation engine."""
from episodes.engine.inject.issue_text import problem_statement_from_failure
from episodes.engine.inject.llm_injector import InjectionOutcome, InjectionRequest, inject
from episodes.engine.inject.reply import MalformedReply, ParsedReply, parse_reply
from episodes.engine.inject.splice import locate_function

__all__ = [
    "InjectionOutcome",
    "InjectionRequest",
    "MalformedReply",
    "ParsedReply",
    "inject",
    "locate_function",
    "parse_reply",
    "problem_statement_from_failure",
]
