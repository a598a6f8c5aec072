"""Problem statements written by a model (the Django shell over ``engine/issue_text.py``).

``write_statement(bug, endpoint, style)`` builds the context from the bug's patch, verifier,
FAIL_TO_PASS and its failing buggy-code run, asks the endpoint, and saves the statement with
``statement_source="llm"``, the style and the flags (leaks, underspecified) — audited. The RQ
job runs on the ``inject`` queue; a batch with ``statement_style`` set has each bug that
validates as valid rewritten (``after_validation``)."""
from __future__ import annotations

import logging

from django.db.models import Q

from bugforge_web.queues import enqueue

from episodes.engine.inject import issue_text
from episodes.models import Bug, InjectionBatch, LLMCall, LLMEndpoint, VerificationRun

log = logging.getLogger(__name__)
STYLES = issue_text.STYLES


class StatementError(RuntimeError):
    pass


def context_for(bug: Bug) -> issue_text.IssueContext:
    runs = VerificationRun.objects.filter(bug=bug, code=VerificationRun.Code.BUGGY).exclude(log_excerpt="")
    run = (runs.filter(~Q(scope=VerificationRun.Scope.VERIFIER), outcome=VerificationRun.Outcome.FAILED).order_by("-id").first()
           or runs.order_by("-id").first())
    return issue_text.IssueContext(patch=bug.patch, test_output=run.log_excerpt if run else "",
                                   failing_tests=list(bug.fail_to_pass or []), verifier=bug.verifier, target=bug.target)


def write_statement(bug: Bug, endpoint: LLMEndpoint, style: str, *, actor=None, attempts: int = 3,
                    batch: InjectionBatch | None = None) -> Bug:
    """Rewrite ``bug``'s problem statement with ``endpoint``; raises ``StatementError`` when no
    attempt gave a usable statement (the old statement stays)."""
    from episodes.engine.llm import LLMClient

    if style not in STYLES:
        raise ValueError(f"unknown statement style {style!r} (one of {', '.join(STYLES)})")
    result = issue_text.write(LLMClient(endpoint.engine_config()), context_for(bug), style, attempts=attempts,
                              on_call=LLMCall.recorder(endpoint, batch))
    if not result.ok:
        raise StatementError(f"no usable statement from {endpoint.name}: " + "; ".join(result.failures))
    flags = {**result.flags, "endpoint": endpoint.name}

    def change():
        bug.problem_statement, bug.statement_source = result.text, Bug.StatementSource.LLM
        bug.statement_style, bug.statement_flags = style, flags

    bug._audited(actor, "write_statement", change, extra_after={"endpoint": endpoint.name, "leaks": result.leaks},
                 problem_statement=result.text, statement_source=Bug.StatementSource.LLM, statement_style=style)
    return bug


def write_statement_job(bug_id: int, endpoint_id: int, style: str, actor_id: int | None = None) -> str:
    from django.contrib.auth import get_user_model

    bug = Bug.objects.get(pk=bug_id)
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    write_statement(bug, LLMEndpoint.objects.get(pk=endpoint_id), style, actor=actor)
    return bug.statement_source


def enqueue_statement(bug: Bug, endpoint: LLMEndpoint, style: str, actor=None) -> str:
    return enqueue("inject", write_statement_job, bug.pk, endpoint.pk, style, getattr(actor, "pk", None))


def after_validation(bug_id: int, batch_id: int) -> str:
    """A batch's bug has settled: when it is valid and the batch asks for LLM statements, write
    one (a failure is kept on the bug's flags; the batch goes on)."""
    bug = Bug.objects.get(pk=bug_id)
    batch = InjectionBatch.objects.get(pk=batch_id)
    style, endpoint_id = batch.options.get("statement_style"), batch.options.get("statement_endpoint")
    if bug.status != Bug.Status.VALID or not style:
        return "skipped"
    endpoint = LLMEndpoint.objects.filter(pk=endpoint_id or batch.options.get("endpoint")).first()
    if endpoint is None:
        Bug.objects.filter(pk=bug.pk).update(statement_flags={**bug.statement_flags, "failures": ["no statement endpoint"]})
        return "no endpoint"
    try:
        write_statement(bug, endpoint, style, batch=batch)
    except StatementError as exc:
        log.warning("bug %s: %s", bug.pk, exc)
        Bug.objects.filter(pk=bug.pk).update(statement_flags={**bug.statement_flags, "failures": [str(exc)[:2000]]})
        return "failed"
    return "written"


def enqueue_after_validation(bug: Bug, batch: InjectionBatch, validation_job_id: str) -> str:
    """Queue ``after_validation`` to run once the bug's validation job has finished."""
    return enqueue("inject", after_validation, bug.pk, batch.pk, depends_on=validation_job_id)
