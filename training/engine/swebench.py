"""Bugs as SWE-bench task instances and back (plain data, no Django).

A BugForge bug is the pinned (clean) commit with the bug's patch applied (clean → buggy); its
fix is that patch reversed. A SWE-bench harness checks out ``base_commit``, applies
``test_patch``, runs FAIL_TO_PASS (they fail), applies ``patch`` and runs them again (they
pass). So ``base_commit`` must be the *buggy* code, which is no commit upstream: the export
makes it — one commit per bug on top of the pinned commit, its tree the buggy tree, written
with a fixed author and date (so the same bug always gets the same sha) under
``refs/bugforge/bug-<id>`` — and ships those commits as a git bundle per repository beside the
JSONL (``<stem>-repos/<repository>.bundle``; ``git clone <bundle>`` or
``git fetch <bundle> 'refs/bugforge/*:refs/bugforge/*'`` into a clone of the upstream repo,
then ``git checkout <base_commit>``)::

    instance_id        "<owner>__<name>__bugforge-<bug id>"
    repo               ``owner/name`` parsed from a github-like origin URL, else the repository's name
    base_commit        the buggy commit (its parent is the pinned clean commit)
    patch              the gold fix: the bug's patch reversed (buggy → clean)
    test_patch         adds the verifier as ``.bugforge/verifier.py``
    FAIL_TO_PASS, PASS_TO_PASS   JSON-encoded lists of test ids (as SWE-bench stores them)
    version            the pinned commit's short sha
    environment_setup_commit     the pinned clean commit
    problem_statement, hints_text, created_at
    bugforge           what SWE-bench has no field for: the clean commit, the bug patch, the
                       verifier, the bundle (relative path), the install recipe (``environment``,
                       shaped like a SWE-bench ``MAP_REPO_VERSION_TO_SPECS`` entry), method,
                       operator, status, flakiness counts, measured and reviewed difficulty,
                       provenance

Nothing host-specific is exported: a local source path is left out (only URLs are kept).
Import accepts both BugForge exports (exact round trip) and foreign instances, whose bug
patch is the reverse of their gold patch and whose verifier runs their FAIL_TO_PASS tests.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

from episodes.engine.validation import VERIFIER_PATH, pytest_verifier

INSTANCE_FIELDS = ("instance_id", "repo", "base_commit", "patch", "test_patch", "FAIL_TO_PASS", "PASS_TO_PASS",
                   "problem_statement", "hints_text", "created_at", "version", "environment_setup_commit")

_HUNK = re.compile(r"^@@ -(\d+(?:,\d+)?) \+(\d+(?:,\d+)?) @@(.*)$", re.S)
_GIT_HEADER = re.compile(r"^diff --git a/(.+?) b/(.+?)(\r?\n)?$")


def _swap_prefix(name: str, to: str) -> str:
    name = name.rstrip("\n")
    if name == "/dev/null":
        return name
    return to + name[2:] if name[:2] in ("a/", "b/") else name


def reverse_patch(patch: str) -> str:
    """The unified diff that undoes ``patch`` (modifications, new and deleted files)."""
    lines = patch.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("diff --git ") and (m := _GIT_HEADER.match(line)):
            out.append(f"diff --git a/{m.group(2)} b/{m.group(1)}\n")
        elif line.startswith("new file mode "):
            out.append("deleted file mode " + line[len("new file mode "):])
        elif line.startswith("deleted file mode "):
            out.append("new file mode " + line[len("deleted file mode "):])
        elif line.startswith("index ") and ".." in line:
            parts = line[6:].rstrip("\n").split(" ", 1)
            old, new = parts[0].split("..", 1)
            out.append(f"index {new}..{old}" + (f" {parts[1]}" if len(parts) > 1 else "") + "\n")
        elif line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old, new = line[4:], lines[i + 1][4:]
            out.append("--- " + _swap_prefix(new, "a/") + "\n")
            out.append("+++ " + _swap_prefix(old, "b/") + "\n")
            i += 1
        elif line.startswith("@@") and (m := _HUNK.match(line)):
            out.append(f"@@ -{m.group(2)} +{m.group(1)} @@{m.group(3)}")
        elif line.startswith(("+", "-")):
            # A run of changed lines: removals first, then additions, as diff tools write them.
            removed, added, last = [], [], "-"
            while i < len(lines) and lines[i].startswith(("+", "-", "\\")):
                current = lines[i]
                if current.startswith("\\"):  # "\ No newline at end of file" belongs to the line before
                    (added if last == "+" else removed).append(current)
                elif current.startswith("+"):
                    removed.append("-" + current[1:])
                    last = "-"
                else:
                    added.append("+" + current[1:])
                    last = "+"
                i += 1
            out += removed + added
            continue
        else:
            out.append(line)
        i += 1
    return "".join(out)


def verifier_test_patch(verifier: str) -> str:
    """A patch that adds the verifier script as a new file."""
    body = verifier if verifier.endswith("\n") else verifier + "\n"
    n = len(body.splitlines())
    return (f"diff --git a/{VERIFIER_PATH} b/{VERIFIER_PATH}\nnew file mode 100644\n--- /dev/null\n"
            f"+++ b/{VERIFIER_PATH}\n@@ -0,0 +1,{n} @@\n" + "".join("+" + l for l in body.splitlines(keepends=True)))


# Counted and measured figures carried in ``bugforge`` and restored on import.
CARRIED = ("method", "operator", "status", "difficulty", "clean_runs", "clean_passes", "buggy_runs", "buggy_fails",
           "flip_rate", "flake_upper_bound", "flake_target", "solve_attempts", "solve_successes", "solve_rate",
           "solve_low", "solve_high", "suite_scope", "target", "injector", "statement_source", "statement_style")
BUGGY_REF = "refs/bugforge/bug-{id}"
_AUTHOR = "BugForge <bugforge@localhost> 0 +0000"
_GITHUB_LIKE = re.compile(r"^(?:https?://|ssh://|git://)?(?:[^@/]+@)?(github\.com|gitlab\.com|bitbucket\.org|codeberg\.org)"
                          r"[:/]+([\w.-]+)/([\w.-]+?)(?:\.git)?/?$")


def repo_name(source: str, name: str) -> str:
    """``owner/name`` when ``source`` is a github-like URL, else ``name``."""
    m = _GITHUB_LIKE.match((source or "").strip())
    return f"{m.group(2)}/{m.group(3)}" if m else name


def public_source(source: str) -> str:
    """``source`` when it is a URL another machine can reach, else "" (a local path)."""
    return source if re.match(r"^(https?|ssh|git)://|^[\w.-]+@[\w.-]+:", source or "") else ""


def _git(mirror: Path, *args: str, input: str | None = None, env: dict | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=mirror, input=input, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", **(env or {})})
    if proc.returncode:
        raise ValueError(f"git {' '.join(args[:2])} failed: {(proc.stderr or proc.stdout).strip()[:500]}")
    return proc.stdout


def buggy_commit(mirror: Path, clean_commit: str, patch: str, bug_id: int) -> str:
    """Make (or find again) the commit holding the buggy code of a bug in the bare ``mirror``:
    its parent is ``clean_commit``, its tree that commit's with ``patch`` applied. Author and
    date are fixed, so the sha depends only on the code. Points ``refs/bugforge/bug-<id>`` at it."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(mirror, "read-tree", clean_commit, env=env)
        _git(mirror, "apply", "--cached", "--whitespace=nowarn", "-", input=patch if patch.endswith("\n") else patch + "\n",
             env=env)
        tree = _git(mirror, "write-tree", env=env).strip()
    body = (f"tree {tree}\nparent {clean_commit}\nauthor {_AUTHOR}\ncommitter {_AUTHOR}\n\n"
            f"BugForge bug {bug_id}: the buggy code (its parent is the clean commit)\n")
    sha = _git(mirror, "hash-object", "-t", "commit", "-w", "--stdin", input=body).strip()
    _git(mirror, "update-ref", BUGGY_REF.format(id=bug_id), sha)
    return sha


def write_bundle(mirror: Path, bug_ids: list[int], dest: Path) -> None:
    """A git bundle at ``dest`` with the buggy commits of ``bug_ids`` (and their history)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    _git(mirror, "bundle", "create", "--quiet", str(dest.resolve()), *[BUGGY_REF.format(id=i) for i in bug_ids])


def environment_recipe(repo: dict) -> dict:
    """How to install the repository's test environment, as a SWE-bench specs entry."""
    detected = repo.get("detected") or {}
    python = re.search(r"3\.\d+", detected.get("requires_python") or "")
    return {
        "python": python.group(0) if python else "3.11",
        "packages": "",
        "pip_packages": list(repo.get("pip_packages") or []),
        "install": repo.get("install_command") or "",
        "test_cmd": repo.get("test_command") or "python -m pytest",
    }


def to_instance(bug: dict) -> dict:
    """A SWE-bench instance from a plain bug dict (keys: id, repository, source, base_commit
    (the clean commit), buggy_commit, patch, verifier, fail_to_pass, pass_to_pass,
    problem_statement, created_at, test_command, environment, bundle, provenance and the
    ``CARRIED`` figures)."""
    name = repo_name(bug.get("source") or "", bug["repository"])
    return {
        "instance_id": f"{name.replace('/', '__')}__bugforge-{bug['id']}",
        "repo": name,
        "base_commit": bug["buggy_commit"],
        "patch": reverse_patch(bug["patch"]),
        "test_patch": verifier_test_patch(bug["verifier"]),
        "FAIL_TO_PASS": json.dumps(list(bug.get("fail_to_pass") or [])),
        "PASS_TO_PASS": json.dumps(list(bug.get("pass_to_pass") or [])),
        "problem_statement": bug.get("problem_statement") or "",
        "hints_text": "",
        "created_at": bug.get("created_at") or "",
        "version": bug["base_commit"][:12],
        "environment_setup_commit": bug["base_commit"],
        "bugforge": {
            "bug_id": bug["id"],
            "repository": bug["repository"],
            "clean_commit": bug["base_commit"],
            "bug_patch": bug["patch"],
            "verifier": bug["verifier"],
            "source": public_source(bug.get("source") or ""),
            "test_command": bug.get("test_command") or "",
            "environment": bug.get("environment") or {},
            "bundle": bug.get("bundle") or "",
            "provenance": bug.get("provenance") or {},
            **{k: bug.get(k) for k in CARRIED if k in bug},
        },
    }


def _test_list(value) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValueError("FAIL_TO_PASS / PASS_TO_PASS must be lists of test ids")
    return value


def from_instance(instance: dict) -> dict:
    """A plain bug dict (as ``to_instance`` takes) from a SWE-bench instance; ValueError when
    a required field is missing or malformed."""
    missing = [f for f in ("instance_id", "repo", "base_commit", "patch") if not instance.get(f)]
    if missing:
        raise ValueError(f"instance {instance.get('instance_id', '?')}: missing {', '.join(missing)}")
    if not re.fullmatch(r"[0-9a-fA-F]{7,40}", instance["base_commit"]):
        raise ValueError(f"instance {instance['instance_id']}: base_commit is not a commit hash")
    try:
        f2p, p2p = _test_list(instance.get("FAIL_TO_PASS")), _test_list(instance.get("PASS_TO_PASS"))
    except (ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"instance {instance['instance_id']}: {exc}") from None
    extra = instance.get("bugforge") or {}
    if not extra.get("verifier") and not f2p:
        raise ValueError(f"instance {instance['instance_id']}: no verifier and no FAIL_TO_PASS tests to make one")
    return {
        "instance_id": instance["instance_id"],
        "repository": extra.get("repository") or instance["repo"],
        "source": extra.get("source") or "",
        "base_commit": extra.get("clean_commit") or instance["base_commit"],
        "patch": extra.get("bug_patch") or reverse_patch(instance["patch"]),
        "verifier": extra.get("verifier") or pytest_verifier(f2p),
        "fail_to_pass": f2p,
        "pass_to_pass": p2p,
        "problem_statement": instance.get("problem_statement") or "",
        "difficulty": extra.get("difficulty") or "",
        "test_command": extra.get("test_command") or (extra.get("environment") or {}).get("test_cmd") or "",
        "install_command": (extra.get("environment") or {}).get("install") or "",
        "provenance": extra.get("provenance") or {},
        "bugforge": bool(extra),
        "carried": {k: extra[k] for k in CARRIED if k in extra and k != "difficulty"},
    }
