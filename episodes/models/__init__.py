"""The domain: repositories, bugs and their verification, teachers and their episodes."""
from .audit import AuditEvent, Review
from .bug import Bug, InjectionBatch
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
    "SolveBatch",
    "Teacher",
    "VerificationRun",
]
