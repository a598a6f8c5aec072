"""Harbor export and import of bugs (the database side of training.engine.harbor)."""
from __future__ import annotations

from pathlib import Path

from episodes.models import Repository
from training.engine import harbor
from training.swebench import import_instances, instance_for


def export_bugs(bugs, out_dir: str | Path) -> list[Path]:
    """One Harbor task directory per bug under ``out_dir``; ValueError when a bug's code cannot be had."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = []
    for bug in bugs:
        instance, mirror = instance_for(bug)
        tasks.append(harbor.write_task(out_dir, instance, harbor.source_tar(mirror, instance["base_commit"])))
    return tasks


def task_dirs(path: str | Path) -> list[Path]:
    """``path`` itself when it is a task directory, else the task directories in it."""
    path = Path(path)
    if (path / "task.toml").is_file():
        return [path]
    return sorted(p for p in path.iterdir() if (p / "task.toml").is_file())


def import_tasks(path: str | Path, repository: Repository | None = None) -> dict:
    """Bugs from BugForge Harbor tasks (one directory, or a folder of them); as
    training.swebench.import_instances, provenance naming the task directory."""
    result = {"created": [], "existing": [], "errors": []}
    for task in task_dirs(path):
        try:
            instance = harbor.read_task(task)
        except ValueError as exc:
            result["errors"].append(str(exc))
            continue
        one = import_instances([instance], repository=repository, source_file=task.name, fmt="harbor")
        for key in result:
            result[key] += one[key]
    return result
