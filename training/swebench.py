"""SWE-bench export and import of bugs (the database side of training.engine.swebench)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from django.db import IntegrityError, transaction

from episodes.models import Bug, Repository
from training.engine import swebench


def bug_dict(bug: Bug) -> dict:
    repo = bug.repository
    return {
        "id": bug.pk, "repository": repo.name, "source": repo.source, "base_commit": bug.base_commit,
        "patch": bug.patch, "verifier": bug.verifier, "fail_to_pass": bug.fail_to_pass,
        "pass_to_pass": bug.pass_to_pass, "problem_statement": bug.problem_statement,
        "created_at": bug.created_at.isoformat() if bug.created_at else "",
        "test_command": repo.test_command, "provenance": bug.provenance,
        "environment": swebench.environment_recipe({
            "detected": repo.detected, "pip_packages": repo.pip_packages, "install_command": repo.install_command,
            "test_command": repo.test_command}),
        **{k: getattr(bug, k) for k in swebench.CARRIED},
    }


def instance_for(bug: Bug, bundle: str = "") -> tuple[dict, Path]:
    """The SWE-bench instance of ``bug`` and the mirror holding its (just made) buggy commit;
    ValueError when the bug's code cannot be had."""
    from episodes.engine.git.workspace import GitError
    from episodes.sandboxes import workspaces

    try:
        mirror = workspaces().ensure_mirror(bug.repository.source, bug.base_commit)
        sha = swebench.buggy_commit(mirror, bug.base_commit, bug.patch, bug.pk)
    except (GitError, OSError, ValueError) as exc:
        raise ValueError(f"bug {bug.pk}: cannot make its buggy commit: {exc}") from None
    return swebench.to_instance(bug_dict(bug) | {"buggy_commit": sha, "bundle": bundle}), mirror


def bundle_dir(out: str | Path) -> Path:
    """Where the bundles of the buggy commits go: ``<stem>-repos/`` beside the JSONL."""
    out = Path(out)
    return out.parent / f"{out.stem}-repos"


def export_bugs(bugs, out: str | Path) -> list[dict]:
    """SWE-bench instances for ``bugs`` (a queryset or list): makes each bug's buggy commit in
    its repository's mirror, bundles them per repository under ``bundle_dir(out)`` and writes
    the instances to ``out`` (JSONL). A bug whose code cannot be had raises ValueError."""
    bugs = list(bugs)
    instances, by_repo = [], {}
    for bug in bugs:
        instance, mirror = instance_for(bug, bundle=f"{bundle_dir(out).name}/{bug.repository.name}.bundle")
        by_repo.setdefault(bug.repository.name, (mirror, []))[1].append(bug.pk)
        instances.append(swebench.harness_form(instance))
    for name, (mirror, ids) in by_repo.items():
        swebench.write_bundle(mirror, ids, bundle_dir(out) / f"{name}.bundle")
    write_jsonl(instances, out)
    return instances


def write_jsonl(instances: list[dict], path: str | Path) -> None:
    with Path(path).open("w") as fh:
        for inst in instances:
            fh.write(json.dumps(inst) + "\n")


def read_instances(path: str | Path) -> list[dict]:
    """Instances from a JSONL file or a JSON list."""
    text = Path(path).read_text()
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _repo_slug(repo: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "__", repo.strip("/"))[:100]


def import_instances(instances: list[dict], repository: Repository | None = None, source_file: str = "",
                     fmt: str = "swebench") -> dict:
    """Create candidate bugs from SWE-bench instances (validate them afterwards).

    Each instance goes to ``repository`` if given, else to the repository named like its
    ``repo`` (created from the exported source, or from GitHub for a foreign ``owner/name``).
    A BugForge export comes back as it left (method, operator, status, flakiness counts,
    measured and reviewed difficulty, provenance); a foreign instance is an imported candidate.
    Either way ``provenance["imported_from"]`` names the file and the instance.
    Returns {"created": [bug ids], "existing": [bug ids], "errors": [text]}; one bad instance
    does not stop the others.
    """
    result = {"created": [], "existing": [], "errors": []}
    for instance in instances:
        try:
            data = swebench.from_instance(instance)
        except ValueError as exc:
            result["errors"].append(str(exc))
            continue
        repo = repository or _existing_repository(data)
        source = repo.source if repo else _source_for(data)
        if not source:
            result["errors"].append(f"instance {data['instance_id']}: no repository {data['repository']} "
                                    "and no source to register it from")
            continue
        if not data["base_commit"]:  # a foreign instance: its base_commit is the buggy code
            try:
                data["base_commit"] = _foreign_clean_commit(source, data)
            except ValueError as exc:
                result["errors"].append(f"instance {data['instance_id']}: cannot make its clean commit "
                                        f"(base_commit + test_patch + patch): {exc}")
                continue
            data["provenance"] = data["provenance"] | {"upstream_base_commit": data["buggy_commit"]}
        repo = repo or _create_repository(data, source)
        existing = Bug.objects.filter(repository=repo, base_commit=data["base_commit"],
                                      patch_hash=Bug.hash_patch(data["patch"])).first()
        if existing:
            result["existing"].append(existing.pk)
            continue
        try:
            with transaction.atomic():
                fields = {"method": Bug.Method.IMPORTED,
                          "injector": f"{fmt} instance {data['instance_id']}"[:200]} | data["carried"]
                fields = {k: v for k, v in fields.items() if v is not None}
                provenance = data["provenance"] | {"imported_from": {
                    "format": fmt, "file": Path(source_file).name if source_file else "",
                    "instance_id": data["instance_id"]}}
                bug = Bug.objects.create(
                    repository=repo, base_commit=data["base_commit"], patch=data["patch"], verifier=data["verifier"],
                    fail_to_pass=data["fail_to_pass"], pass_to_pass=data["pass_to_pass"],
                    problem_statement=data["problem_statement"], difficulty=data["difficulty"],
                    provenance=provenance, **fields,
                )
        except IntegrityError as exc:
            result["errors"].append(f"instance {data['instance_id']}: {exc}")
            continue
        result["created"].append(bug.pk)
    return result


def _existing_repository(data: dict) -> Repository | None:
    name = data["repository"]
    return Repository.objects.filter(name=name).first() or Repository.objects.filter(name=_repo_slug(name)).first()


def _source_for(data: dict) -> str:
    """Where a repository not registered yet is fetched from: the exported source, else GitHub
    for a foreign ``owner/name`` ("" when neither)."""
    name = data["repository"]
    return data["source"] or (f"https://github.com/{name}.git" if re.fullmatch(r"[\w.-]+/[\w.-]+", name) else "")


def _foreign_clean_commit(source: str, data: dict) -> str:
    """The clean commit of a foreign instance (made in the mirror of ``source`` on top of its
    buggy base_commit: ``training.engine.swebench.clean_commit``)."""
    from episodes.engine.git.workspace import GitError
    from episodes.sandboxes import workspaces

    try:
        mirror = workspaces().ensure_mirror(source, data["buggy_commit"])
        return swebench.clean_commit(mirror, data["buggy_commit"], data["gold_patch"], data["test_patch"],
                                     data["instance_id"])
    except (GitError, OSError) as exc:
        raise ValueError(str(exc)) from None


def _create_repository(data: dict, source: str) -> Repository:
    return Repository.objects.create(name=_repo_slug(data["repository"]), source=source,
                                     pinned_commit=data["base_commit"],
                                     test_command=data["test_command"] or "python -m pytest",
                                     install_command=data["install_command"])
