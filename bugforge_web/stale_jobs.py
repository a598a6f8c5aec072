"""One sweeper for rows left in progress by a job that died (a worker killed outright runs no
failure handler): repositories preparing, bugs validating, episodes and training runs running.

A model's queryset subclasses ``StaleJobQuerySet`` and says, in its ``sweep_stale``, which
statuses are in progress, which queue and job-id field the job is found by, when the row has
gone silent, and what the row becomes. The row is only changed while it still has the status
it was read with (a job that finishes meanwhile wins), and only rows actually changed are
reported."""
from __future__ import annotations

import datetime
from typing import Callable

from django.conf import settings
from django.db import models
from django.utils import timezone


class StaleJobQuerySet(models.QuerySet):
    def _sweep_stale(
        self,
        *,
        statuses,
        queue: str,
        becomes: Callable[[models.Model, str], dict],
        job_field: str = "job_id",
        without_job: bool = False,
        silent: Callable[[models.Model, datetime.datetime], bool] | None = None,
        stale_after_s: int | None = None,
    ) -> list[tuple[int, str]]:
        """Sweep the rows in ``statuses``: those whose job (``job_field`` on ``queue``) can no
        longer finish them, or that are ``silent(row, cutoff)`` — no heartbeat since ``cutoff``,
        ``stale_after_s`` ago (default ``BUGFORGE_STALE_AFTER_S``) — get ``becomes(row, why)``'s
        fields. ``without_job``: rows with no job id are swept too (as jobs that no longer
        exist); otherwise they are left alone. Returns (id, why) per row swept."""
        from bugforge_web.queues import dead_job_reason

        stale_after_s = settings.BUGFORGE_STALE_AFTER_S if stale_after_s is None else stale_after_s
        cutoff = timezone.now() - datetime.timedelta(seconds=stale_after_s)
        rows = self.filter(status__in=list(statuses))
        if not without_job:
            rows = rows.exclude(**{job_field: ""})
        swept = []
        for row in rows:
            why = dead_job_reason(queue, getattr(row, job_field))
            if not why and silent is not None and silent(row, cutoff):
                why = f"no sign of life from its job for over {stale_after_s}s"
            if why and self.filter(pk=row.pk, status=row.status).update(**becomes(row, why)):
                swept.append((row.pk, why))
        return swept
