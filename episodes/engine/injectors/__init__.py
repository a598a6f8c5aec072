"""Bug injectors (plain Python, no Django): each turns a function of a repository into a
candidate bug — a patch, a verifier and a problem statement — for the validation engine."""
from .llm_injector import (
    InjectionOutcome,
    InjectionRequest,
    MalformedReply,
    ParsedReply,
    inject,
    locate_function,
    parse_reply,
    problem_statement_from_failure,
)

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
