"""RQ jobs of the `solve` queue: one job per episode (see ``episodes.solving.episodes``).

The job is thin: ``solving.run_episode`` marks the row, runs the teacher, grades and stores,
and on an exception stores it on the episode (status failed) before re-raising so RQ records it
too. A worker killed outright runs no handler: ``Episode.objects.sweep_stale()`` fails such
episodes from their job's state and heartbeat.
"""
from __future__ import annotations

from django.conf import settings
from django.db import transaction

from bugforge_web.queues import enqueue

from episodes.models import Episode

GRADING_MARGIN_S = 600  # checkouts and the two grading runs, on top of the agent's own time


def job_timeout(episode: Episode) -> int:
    return int(episode.teacher.limits().max_wall_s + 2 * settings.BUGFORGE_RUN_TIMEOUT + GRADING_MARGIN_S)


def enqueue_episode(episode: Episode) -> str:
    """Queue ``episode`` on `solve` (after the surrounding transaction commits) and keep the job id."""
    with transaction.atomic():
        job_id = enqueue("solve", solve_episode, episode.pk, job_timeout=job_timeout(episode))
        Episode.objects.filter(pk=episode.pk).update(job_id=job_id, status=Episode.Status.QUEUED)
    episode.job_id = job_id
    return job_id


def solve_episode(episode_id: int) -> str:
    from episodes.solving.episodes import run_episode

    return run_episode(episode_id)
