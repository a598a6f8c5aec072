"""Bugs as SWE-bench task instances and back (plain data, no Django).

A BugForge bug is the pinned commit with the bug's patch applied (clean → buggy); its fix is
that patch reversed. In SWE-bench terms:

    instance_id        "<repository>__bugforge-<bug id>"
    repo               the repository's name (``owner/name`` when it was imported as such)
    base_commit        the pinned commit the bug is planted on
    patch              the gold fix: the bug's patch reversed (buggy → clean)
    test_patch         adds the verifier as ``.bugforge/verifier.py``
    FAIL_TO_PASS, PASS_TO_PASS   JSON-encoded lists of test ids (as SWE-bench stores them)
    problem_statement, hints_text, created_at, version, environment_setup_commit
    bugforge           what SWE-bench has no field for: the bug patch itself (a harness applies
                       it to ``base_commit`` first), the verifier, source, test command, difficulty

Import accepts both BugForge exports (exact round trip) and foreign instances, whose bug
patch is the reverse of their gold patch and whose verifier runs their FAIL_TO_PASS tests.
"""
from __future__ import annotations

import json
import re

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
            removed, added = [], []
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


def to_instance(bug: dict) -> dict:
    """A SWE-bench instance from a plain bug dict (keys: id, repository, source, base_commit,
    patch, verifier, fail_to_pass, pass_to_pass, problem_statement, created_at, difficulty,
    test_command, method)."""
    return {
        "instance_id": f"{bug['repository'].replace('/', '__')}__bugforge-{bug['id']}",
        "repo": bug["repository"],
        "base_commit": bug["base_commit"],
        "patch": reverse_patch(bug["patch"]),
        "test_patch": verifier_test_patch(bug["verifier"]),
        "FAIL_TO_PASS": json.dumps(list(bug.get("fail_to_pass") or [])),
        "PASS_TO_PASS": json.dumps(list(bug.get("pass_to_pass") or [])),
        "problem_statement": bug.get("problem_statement") or "",
        "hints_text": "",
        "created_at": bug.get("created_at") or "",
        "version": "",
        "environment_setup_commit": bug["base_commit"],
        "bugforge": {
            "bug_id": bug["id"],
            "bug_patch": bug["patch"],
            "verifier": bug["verifier"],
            "source": bug.get("source") or "",
            "test_command": bug.get("test_command") or "",
            "difficulty": bug.get("difficulty") or "",
            "method": bug.get("method") or "",
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
        "repository": instance["repo"],
        "source": extra.get("source") or "",
        "base_commit": instance["base_commit"],
        "patch": extra.get("bug_patch") or reverse_patch(instance["patch"]),
        "verifier": extra.get("verifier") or pytest_verifier(f2p),
        "fail_to_pass": f2p,
        "pass_to_pass": p2p,
        "problem_statement": instance.get("problem_statement") or "",
        "difficulty": extra.get("difficulty") or "",
        "test_command": extra.get("test_command") or "",
    }
