"""The domain: repositories, bugs and their verification, teachers and their episodes."""
from episodes.models.audit import AuditEvent, Review
from episodes.models.bug import Bug, InjectionBatch
from episodes.models.difficulty import SelfPlay, SolveAttempt
from episodes.models.episode import Episode, LLMCall, LLMEndpoint, SolveBatch, Teacher
from episodes.models.repository import Repository
from episodes.models.verification import VerificationRun

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
