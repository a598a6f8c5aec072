"""Thin helpers over django-rq: enqueue a domain job and remember its id on the row."""
import uuid

import django_rq
from django.conf import settings


def enqueue(queue_name: str, func, *args, job_timeout: int | None = None, **kwargs) -> str:
    """Enqueue ``func`` and return the job id. django-rq defers the enqueue until the
    surrounding transaction commits (so a worker never sees rows that are not there yet),
    which is why the id is chosen here rather than read back from the job."""
    assert queue_name in settings.QUEUE_NAMES, queue_name
    job_id = uuid.uuid4().hex
    django_rq.get_queue(queue_name).enqueue(func, *args, job_id=job_id, job_timeout=job_timeout, **kwargs)
    return job_id


def queue_lengths() -> dict[str, int | None]:
    """Jobs waiting per queue; None when Redis does not answer (shown, never raised)."""
    lengths = {}
    for name in settings.QUEUE_NAMES:
        try:
            lengths[name] = django_rq.get_queue(name).count
        except Exception:  # redis down: the page says so instead of failing
            lengths[name] = None
    return lengths


def worker_count() -> int | None:
    from rq import Worker

    try:
        return len(Worker.all(connection=django_rq.get_connection("verify")))
    except Exception:
        return None


def dead_job_reason(queue_name: str, job_id: str) -> str:
    """Why the job behind a row in progress can no longer finish it ("" while it still can):
    it ended (failed, stopped, cancelled, or finished without saving) or Redis forgot it.
    The sweepers of bugs, episodes and training runs share this."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        job = Job.fetch(job_id, connection=django_rq.get_connection(queue_name))
        state = job.get_status()
    except NoSuchJobError:
        return f"its job {job_id or '(none)'} no longer exists"
    if state == "failed":
        return f"its job {job_id} failed" + (f": {error}" if (error := job_error(job)) else "")
    if state in ("stopped", "canceled", "finished"):
        return f"its job {job_id} is {state}"
    return ""


def job_error(job) -> str:
    """The last line of a failed job's traceback (RQ keeps it with the job's result)."""
    try:
        result = job.latest_result()
        text = (result.exc_string if result is not None else None) or job.exc_info or ""
    except Exception:  # an old or half-written job hash: no detail, not a crash
        text = ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip()[:500] if lines else ""
