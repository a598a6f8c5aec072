"""Imported agent logs → Episode rows (the Django side of ``engine.trajectories.importers``)."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction

from episodes.engine.trajectories.importers import ImportedEpisode
from episodes.models import AuditEvent, Episode, Teacher

# Which Teacher.harness a new teacher gets for each import format.
HARNESS_OF_FORMAT = {
    "claude_code": Teacher.Harness.CLAUDE_CODE,
    "codex": Teacher.Harness.CODEX,
    "mini_swe_agent": Teacher.Harness.IMPORTED,
    "swe_agent": Teacher.Harness.IMPORTED,
}


def teacher_for_import(name: str, fmt: str, model: str = "") -> tuple[Teacher, bool]:
    """The named teacher, created for imports when missing (its terms stay unknown, so every
    export of its data warns until staff set them)."""
    return Teacher.objects.get_or_create(
        name=name, defaults={"harness": HARNESS_OF_FORMAT[fmt], "model": model or "", "terms_allow_training": None}
    )


def _when(value) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _cost(value) -> Decimal:
    try:
        return Decimal(str(value or 0)).quantize(Decimal("0.000001"))
    except InvalidOperation:
        return Decimal(0)


def already_imported(digest: str, *, bug, teacher: Teacher) -> Episode | None:
    """The episode this exact file (by content hash) already became for this teacher and bug."""
    ids = AuditEvent.objects.filter(
        action="import_episode", target_type="episodes.episode", after__sha256=digest
    ).values_list("target_id", flat=True)
    return Episode.objects.filter(pk__in=[int(i) for i in ids], bug=bug, teacher=teacher).first()


@transaction.atomic
def store_imported(imported: ImportedEpisode, *, bug, teacher: Teacher, fmt: str, source: str, actor=None,
                   digest: str = "") -> Episode:
    """One Episode from an imported log. Not graded here (see ``grade_imported``): its reward
    stays unknown (None) and its status says only whether the source run ended in an error."""
    meta = imported.metadata
    exit_reason = meta.get("exit_reason") or ""
    if exit_reason not in Episode.ExitReason.values:
        exit_reason = Episode.ExitReason.ERROR if imported.failed else Episode.ExitReason.FINISHED
    episode = Episode.objects.create(
        bug=bug,
        teacher=teacher,
        status=Episode.Status.FAILED if imported.failed else Episode.Status.UNSOLVED,
        exit_reason=exit_reason,
        error=str(meta.get("error") or ""),
        trajectory=imported.trajectory,
        agent_events=imported.events,
        final_patch=meta.get("submission") or "",
        steps=meta.get("steps") or 0,
        tokens_in=meta.get("tokens_in") or 0,
        tokens_out=meta.get("tokens_out") or 0,
        cost_usd=_cost(meta.get("cost_usd")),
        started_at=_when(meta.get("started_at")),
        finished_at=_when(meta.get("finished_at")),
    )
    provenance = {k: v for k, v in meta.items() if k not in ("submission", "final_message") and v not in (None, "")}
    AuditEvent.record(actor, "import_episode", episode,
                      after={"format": fmt, "source": source, "sha256": digest, **provenance})
    return episode


def grade_imported(episode: Episode) -> Episode:
    """Grade an imported episode's submitted patch (mini-swe-agent's ``submission``) exactly as
    a solved episode is graded (``engine.solve.reward``: source files only, on pristine tests, in the
    sandbox), so imported logs can earn the reward that SFT datasets select on."""
    from episodes.engine.solve.reward import grade
    from episodes.engine.validate.validator import BugSpec
    from episodes.sandboxes import default_limits, executor, repo_spec, workspaces

    bug = episode.bug
    if not episode.final_patch.strip():
        raise ValueError(f"episode {episode.pk} has no submitted patch to grade")
    result = grade(
        executor(), workspaces(), repo_spec(bug.repository), BugSpec(bug.patch, bug.verifier),
        fail_to_pass=bug.fail_to_pass, pass_to_pass=bug.pass_to_pass, patch=episode.final_patch,
        limits=default_limits(bug.repository), suspicious=settings.BUGFORGE_SUSPICIOUS_EPISODES,
    )
    if result.reward:
        status = Episode.Status.SOLVED
    else:
        status = Episode.Status.FAILED if episode.status == Episode.Status.FAILED else Episode.Status.UNSOLVED
    Episode.objects.filter(pk=episode.pk).update(reward=1.0 if result.reward else 0.0, grading=result.to_dict(), status=status,
        integrity=Episode.integrity_of(result.to_dict()))
    episode.refresh_from_db()
    return episode
