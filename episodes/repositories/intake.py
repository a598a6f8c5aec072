"""Bringing a repository in: register a source + ref, then prepare it — fetch and pin the ref to
its 40-hex commit, infer the test environment (``engine.repos.detect``; what the user set wins),
build it, run the baseline — as one job with progress. ``manage.py add_repo`` and the *Add
repository* page both go through ``register`` and ``prepare``."""
from __future__ import annotations

import re
import shlex
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction

from bugforge_web.queues import enqueue

from episodes.validation import jobs
from episodes.engine.repos import detect as repo_detect
from episodes.models import Repository
from episodes.sandboxes import environment_spec, executor, workspaces

STEPS = ["fetching", "detecting the environment", "building the environment", "running the baseline"]
OVERRIDABLE = ("test_command", "install_command", "pip_packages", "python")


@dataclass
class RepoRequest:
    """What a user asks for; a field left None is inferred from the checkout."""

    source: str
    ref: str = ""
    name: str = ""
    test_command: str | None = None
    install_command: str | None = None
    pip_packages: list[str] | None = None
    python: str | None = None
    overrides: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.overrides = [f for f in OVERRIDABLE if getattr(self, f) is not None]


def parse_line(line: str) -> RepoRequest | None:
    """One line of an ``add_repo --from`` file: ``SOURCE [REF] [key=value ...]`` (keys: name,
    test_command, install_command, pip_packages (comma-separated), python); # comments."""
    words = shlex.split(line, comments=True)
    if not words:
        return None
    source, rest = words[0], words[1:]
    ref = rest.pop(0) if rest and "=" not in rest[0] else ""
    options: dict = {}
    for word in rest:
        key, sep, value = word.partition("=")
        if not sep or key not in ("name", *OVERRIDABLE):
            raise ValueError(f"unknown option {word!r} (use name=, test_command=, install_command=, pip_packages=, python=)")
        options[key] = [p.strip() for p in value.split(",") if p.strip()] if key == "pip_packages" else value
    return RepoRequest(source=source, ref=ref, **options)


def default_name(source: str) -> str:
    stem = re.sub(r"\.git$", "", source.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1])
    base = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-")[:80] or "repo"
    name, n = base, 1
    while Repository.objects.filter(name=name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def check_source(source: str) -> str:
    """A clear error for a source that cannot be a git repository ("" when it may be one)."""
    if not source.strip():
        return "give a git URL or the path of a local git repository"
    if "://" in source or re.match(r"^[\w.-]+@[\w.-]+:", source):
        return ""
    path = Path(source)
    if not path.is_absolute():
        return f"{source!r}: a local path must be absolute"
    if not path.exists():
        return f"{source}: no such directory"
    if not ((path / ".git").exists() or (path / "HEAD").is_file()):
        return f"{source}: not a git repository (no .git)"
    return ""


def register(request: RepoRequest, previous: Repository | None = None) -> Repository:
    """A new Repository row (state new) for ``request``; ``prepare`` does the rest."""
    if problem := check_source(request.source):
        raise ValueError(problem)
    values = {f: getattr(request, f) for f in request.overrides}
    return Repository.objects.create(
        name=request.name or default_name(request.source),
        source=request.source,
        ref=request.ref,
        previous_pin=previous,
        test_command=values.get("test_command") or "python -m pytest",
        install_command=values.get("install_command") or "",
        environment_spec={k: values[k] for k in ("pip_packages", "python") if k in values},
        overridden=request.overrides,
    )


def repin(repo: Repository, ref: str = "") -> Repository:
    """A new, separate pin of ``repo``'s source at what ``ref`` (default: the ref it was added
    with) names now; the old pin and its bugs stay as they are."""
    _, commit = workspaces().resolve(repo.source, ref or repo.ref)
    same = Repository.objects.filter(source=repo.source, pinned_commit=commit, archived_at__isnull=True).first()
    if same:
        raise ValueError(f"{repo.source} at {commit[:12]} is already pinned as {same.name}")
    request = RepoRequest(source=repo.source, ref=ref or repo.ref, name=default_name(f"{repo.name}-{commit[:7]}"),
                          **{f: _current(repo, f) for f in repo.overridden})
    return register(request, previous=repo)


def _current(repo: Repository, field_name: str):
    if field_name in ("pip_packages", "python"):
        return repo.environment_spec.get(field_name)
    return getattr(repo, field_name)


def enqueue_prepare(repo: Repository, first_batch: int = 0):
    with transaction.atomic():
        repo.job_id = enqueue("verify", prepare, repo.pk, first_batch=first_batch)
        repo.status, repo.error, repo.progress = Repository.Status.PREPARING, "", {"step": "queued", "done": 0, "total": len(STEPS)}
        repo.save(update_fields=["job_id", "status", "error", "progress", "updated_at"])
    return repo.job_id


def prepare(repo_id: int, progress=None, first_batch: int = 0) -> str:
    """Fetch, pin, detect, build and baseline; the repository ends ready or broken (with the
    reason and the setting to change), never half-way. ``progress(step, done, total)`` too.
    Once ready, ``first_batch`` procedural candidates are queued on 'inject'."""
    repo = Repository.objects.get(pk=repo_id)
    repo.mark(Repository.Status.PREPARING)

    def step(i: int) -> None:
        repo.step(STEPS[i], i, len(STEPS))
        if progress:
            progress(STEPS[i], i, len(STEPS))

    try:
        step(0)
        mirror, commit = workspaces().resolve(repo.source, repo.pinned_commit or repo.ref)
        repo.pinned_commit = commit
        repo.save(update_fields=["pinned_commit", "updated_at"])
        step(1)
        with workspaces().checkout(mirror, commit) as checkout:
            found = repo_detect.detect(checkout)
            _apply(repo, found)
            step(2)
            executor().ensure_environment(environment_spec(repo, checkout), checkout)
    except Exception as exc:
        repo.mark(Repository.Status.BROKEN, f"{STEPS[repo.progress.get('done', 0)]} failed: {type(exc).__name__}: {exc}"
                                            f"\n\n{traceback.format_exc()}")
        raise
    step(3)
    status = jobs.run_baseline(repo.pk)
    Repository.objects.filter(pk=repo.pk).update(progress={})
    if first_batch and status == Repository.Status.READY:
        from episodes.injection import batches as injection
        injection.start_batch(Repository.objects.get(pk=repo.pk), "procedural", first_batch)
    if progress:
        progress("done", len(STEPS), len(STEPS))
    return status


def _apply(repo: Repository, found: repo_detect.Detected) -> None:
    """Inferred values for every field the user did not set; the inference is kept for the page."""
    repo.detected = found.to_dict()
    if "test_command" not in repo.overridden:
        repo.test_command = found.test_command
    if "install_command" not in repo.overridden:
        repo.install_command = found.install_command
    spec = dict(repo.environment_spec)
    if "pip_packages" not in repo.overridden:
        spec["pip_packages"] = found.pip_packages
    if "python" not in repo.overridden and found.python != "python3":
        spec["python"] = found.python
    repo.environment_spec = spec
    repo.save()


def report_lines(repo: Repository) -> list[str]:
    """The baseline report, as the command prints it (the page shows the same facts)."""
    counts, cov = repo.baseline_counts, repo.coverage_summary
    lines = [f"{repo.name}: {repo.get_status_display()} at {repo.pinned_commit or '(not pinned)'}"
             + (f" ({repo.ref})" if repo.ref else "")]
    if repo.baseline_at:
        lines.append(f"  tests: {len(repo.baseline_tests)} found, {counts['passed']} passing, {counts['failed']} failing, "
                     f"{counts['error']} erroring, {counts['skipped']} skipped; suite {repo.baseline_duration_s or 0:.1f} s")
        lines.append(f"  coverage: {cov['files']} file(s), {cov['lines']} line(s) executed by {cov['tests']} passing test(s)")
    lines.append(f"  test command: {repo.test_command}   install: {repo.install_command or '—'}")
    lines.append(f"  packages: {', '.join(repo.pip_packages) or '—'}")
    for reason in repo.detected.get("reasons", []):
        lines.append(f"  inferred: {reason}")
    for warning in repo.detected.get("warnings", []):
        lines.append(f"  warning: {warning}")
    if repo.overridden:
        lines.append(f"  set by you: {', '.join(repo.overridden)}")
    if repo.error:
        lines.append("  " + repo.error.split("\n\n")[0])
    return lines


def summary_row(repo: Repository) -> list[str]:
    counts = repo.baseline_counts
    return [repo.name, repo.status, repo.short_commit or "—",
            f"{counts['passed']}/{len(repo.baseline_tests)}" if repo.baseline_at else "—",
            f"{repo.baseline_duration_s:.1f}s" if repo.baseline_duration_s is not None else "—",
            str(repo.coverage_summary["lines"]), (repo.error.split("\n")[0][:70] if repo.error else "")]
