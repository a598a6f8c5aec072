"""The domain: repositories, bugs and their verification, teachers and their episodes."""
from .audit import AuditEvent, Review
from .bug import Bug, InjectionBatch
from .difficulty import SelfPlay, SolveAttempt
from .episode import Episode, LLMCall, LLMEndpoint, SolveBatch, Teacher
from .repository import Repository
from .verification import VerificationRun

__all__ = [
    "AuditEvent",
    "Bug",
    "Episode",
    "InjectionBatch",
    "LLMCall",
    "LLMEndpoint",
    "Repository",
    "Review",
    "SelfPlay",
    "SolveAttempt",
    "SolveBatch",
    "Teacher",
    "VerificationRun",
]
