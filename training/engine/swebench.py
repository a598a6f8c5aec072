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
    FAIL_TO_PASS, PASS_TO_PASS   JSON-encoded lists of test ids (as SWE-bench stores them; in the
                       JSONL cut at the first space, as SWE-bench's pytest log parser keys
                       them: ``harness_form``, the exact ids then in ``bugforge``)
    version            the pinned commit's short sha
    environment_setup_commit     the pinned clean commit
    problem_statement, hints_text, created_at
    bugforge           what SWE-bench has no field for: the clean commit, the bug patch, the
                       verifier, the bundle (relative path), the install recipe (``environment``,
                       shaped like a SWE-bench ``MAP_REPO_VERSION_TO_SPECS`` entry), method,
                       operator, status, flakiness counts, measured and reviewed difficulty,
                       provenance

Nothing host-specific is exported: a local source path is left out (only URLs are kept).
Import accepts both BugForge exports (exact round trip) and foreign instances. A foreign
instance's ``base_commit`` is its buggy code: its clean commit is made on top of it (tree:
``base_commit`` + ``test_patch`` + ``patch``, fixed author and date, ``refs/bugforge/clean-<id>``),
its bug patch is the reverse of the gold patch (so the buggy code is ``base_commit`` +
``test_patch``, what the harness runs FAIL_TO_PASS on) and its verifier runs FAIL_TO_PASS.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

from episodes.engine.git import patches
from episodes.engine.validate.validator import VERIFIER_PATH, pytest_verifier
from episodes.engine.git.workspace import unified_diff

INSTANCE_FIELDS = ("instance_id", "repo", "base_commit", "patch", "test_patch", "FAIL_TO_PASS", "PASS_TO_PASS",
                   "problem_statement", "hints_text", "created_at", "version", "environment_setup_commit")


def _swap_prefix(name: str, to: str) -> str:
    name = name.rstrip("\n")
    if name == "/dev/null":
        return name
    return to + name[2:] if name[:2] in ("a/", "b/") else name


def _range(start: int, length: int) -> str:
    return f"{start}" if length == 1 else f"{start},{length}"  # as git writes it


def _reverse_header(section: patches.FilePatch) -> list[str]:
    """A file section's header lines, old and new side swapped."""
    lines = patches.split_lines(section.header)
    old, new = section.source or section.target, section.target or section.source
    swaps = {"new file mode ": "deleted file mode ", "deleted file mode ": "new file mode ",
             "rename from ": "rename to ", "rename to ": "rename from ", "copy from ": "copy to ", "copy to ": "copy from "}
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        word = next((w for w in swaps if line.startswith(w)), None)
        if line.startswith("diff --git "):
            out.append(f"diff --git a/{new} b/{old}\n")
        elif word:
            out.append(swaps[word] + line[len(word):])
        elif line.startswith("index ") and ".." in line:
            parts = line[6:].rstrip("\n").split(" ", 1)
            before, after = parts[0].split("..", 1)
            out.append(f"index {after}..{before}" + (f" {parts[1]}" if len(parts) > 1 else "") + "\n")
        elif line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            out.append("--- " + _swap_prefix(lines[i + 1][4:], "a/") + "\n")
            out.append("+++ " + _swap_prefix(line[4:], "b/") + "\n")
            i += 1
        else:
            out.append(line)
        i += 1
    return out


def _reverse_hunk(hunk, text: str) -> list[str]:
    """One hunk reversed: its ranges swapped; in each run of changed lines the removals come
    first, then the additions, as diff tools write them."""
    lines = patches.split_lines(text)
    header = lines[0]
    rest = header[header.index(" @@", 2) + 3:]  # the section heading and line end, as they were
    out = [f"@@ -{_range(hunk.target_start, hunk.target_length)} +{_range(hunk.source_start, hunk.source_length)} @@{rest}"]
    numbered = [line.diff_line_no for line in hunk if line.diff_line_no]
    end = 1 + numbered[-1] - numbered[0] + 1  # past the hunk's counted body lines
    while end < len(lines) and lines[end].startswith("\\"):
        end += 1  # a "no newline" marker after the last counted line is still the hunk's
    out += _reverse_body(lines[1:end])
    return out + lines[end:]  # what trails the hunk (a mail signature, blank lines): as it was


def _reverse_body(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith(("+", "-")):
            out.append(lines[i])
            i += 1
            continue
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
    return out


def reverse_patch(patch: str) -> str:
    """The unified diff that undoes ``patch`` (modifications, new, deleted and renamed files);
    read with ``engine.git.patches`` (unidiff)."""
    sections = patches.parse(patch)
    body = "".join(section.text for section in sections)
    out = [patch[:len(patch) - len(body)]]  # any text before the first file, kept as it was
    for section in sections:
        out += _reverse_header(section)
        for hunk, text in zip(section.parsed, section.hunks):
            out += _reverse_hunk(hunk, text)
    return "".join(out)


def verifier_test_patch(verifier: str) -> str:
    """A patch that adds the verifier script as a new file."""
    return unified_diff(VERIFIER_PATH, None, verifier if verifier.endswith("\n") else verifier + "\n")


# Counted and measured figures carried in ``bugforge`` and restored on import.
CARRIED = ("method", "operator", "status", "difficulty", "clean_runs", "clean_passes", "buggy_runs", "buggy_fails",
           "flip_rate", "flake_upper_bound", "flake_target", "solve_attempts", "solve_successes", "solve_rate",
           "solve_low", "solve_high", "suite_scope", "target", "injector", "statement_source", "statement_style")
BUGGY_REF = "refs/bugforge/bug-{id}"
CLEAN_REF = "refs/bugforge/clean-{slug}"
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


def _commit_with_patches(mirror: Path, parent: str, patches: list[str], message: str, ref: str) -> str:
    """Make (or find again) a commit in the bare ``mirror`` whose parent is ``parent`` and whose
    tree is the parent's with ``patches`` applied in turn. Author and date are fixed, so the sha
    depends only on the code. Points ``ref`` at it."""
    parent = _git(mirror, "rev-parse", "--verify", f"{parent}^{{commit}}").strip()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(mirror, "read-tree", parent, env=env)
        for patch in patches:
            if patch.strip():
                _git(mirror, "apply", "--cached", "--whitespace=nowarn", "-",
                     input=patch if patch.endswith("\n") else patch + "\n", env=env)
        tree = _git(mirror, "write-tree", env=env).strip()
    body = f"tree {tree}\nparent {parent}\nauthor {_AUTHOR}\ncommitter {_AUTHOR}\n\n{message}\n"
    sha = _git(mirror, "hash-object", "-t", "commit", "-w", "--stdin", input=body).strip()
    _git(mirror, "update-ref", ref, sha)
    return sha


def buggy_commit(mirror: Path, clean_commit: str, patch: str, bug_id: int) -> str:
    """Make (or find again) the commit holding the buggy code of a bug in the bare ``mirror``:
    its parent is ``clean_commit``, its tree that commit's with ``patch`` applied. Author and
    date are fixed, so the sha depends only on the code. Points ``refs/bugforge/bug-<id>`` at it."""
    return _commit_with_patches(mirror, clean_commit, [patch],
                                f"BugForge bug {bug_id}: the buggy code (its parent is the clean commit)",
                                BUGGY_REF.format(id=bug_id))


def clean_commit(mirror: Path, base_commit: str, patch: str, test_patch: str, instance_id: str) -> str:
    """The clean state of a foreign SWE-bench instance as a commit in the bare ``mirror``: its
    parent is the instance's (buggy) ``base_commit``, its tree that commit's with ``test_patch``
    and the gold ``patch`` applied (the code a harness sees pass FAIL_TO_PASS). Fixed author and
    date, like ``buggy_commit``; ``refs/bugforge/clean-<instance id>`` points at it. ValueError
    when a patch does not apply."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", instance_id).strip("._")[:200] or "instance"
    return _commit_with_patches(mirror, base_commit, [test_patch, patch],
                                f"BugForge: the clean code of SWE-bench instance {instance_id} "
                                "(its parent is the instance's base_commit; test_patch and patch applied)",
                                CLEAN_REF.format(slug=slug))


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


def harness_test_id(test_id: str) -> str:
    """A pytest node id as SWE-bench's pytest log parser keys it: up to the first whitespace
    (``parse_log_pytest`` splits the ``-rA`` summary line on whitespace), so a parametrized id
    such as ``test_f[not yet valid]`` is ``test_f[not`` — the form SWE-bench's datasets use."""
    return test_id.split()[0] if test_id.strip() else test_id


def harness_form(instance: dict) -> dict:
    """``instance`` with FAIL_TO_PASS / PASS_TO_PASS as a stock SWE-bench harness grades them
    (``harness_test_id``, duplicates dropped, an id in both lists kept in FAIL_TO_PASS only); the
    exact node ids, when they differ, travel in ``bugforge`` (and come back on import). Without
    this, a harness finds no result for an id with a space and never calls the gold patch a fix."""
    f2p, p2p = json.loads(instance["FAIL_TO_PASS"]), json.loads(instance["PASS_TO_PASS"])
    harness_f2p = list(dict.fromkeys(map(harness_test_id, f2p)))
    harness_p2p = [t for t in dict.fromkeys(map(harness_test_id, p2p)) if t not in set(harness_f2p)]
    if (harness_f2p, harness_p2p) == (f2p, p2p):
        return instance
    return instance | {"FAIL_TO_PASS": json.dumps(harness_f2p), "PASS_TO_PASS": json.dumps(harness_p2p),
                       "bugforge": (instance.get("bugforge") or {}) | {"fail_to_pass": f2p, "pass_to_pass": p2p}}


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
    extra = instance.get("bugforge") or {}
    try:  # a BugForge export's exact node ids (``harness_form``) win over the harness's form
        f2p = _test_list(extra["fail_to_pass"] if "fail_to_pass" in extra else instance.get("FAIL_TO_PASS"))
        p2p = _test_list(extra["pass_to_pass"] if "pass_to_pass" in extra else instance.get("PASS_TO_PASS"))
    except (ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"instance {instance['instance_id']}: {exc}") from None
    if not extra.get("verifier") and not f2p:
        raise ValueError(f"instance {instance['instance_id']}: no verifier and no FAIL_TO_PASS tests to make one")
    # A BugForge export names its clean commit. A foreign instance's base_commit is the buggy
    # code; its clean state (base_commit + test_patch + patch) is no commit yet: the caller
    # makes it with ``clean_commit`` from ``buggy_commit``, ``test_patch`` and ``gold_patch``.
    clean = extra.get("clean_commit") or ""
    return {
        "instance_id": instance["instance_id"],
        "repository": extra.get("repository") or instance["repo"],
        "source": extra.get("source") or "",
        "base_commit": clean,
        "buggy_commit": "" if clean else instance["base_commit"],
        "gold_patch": "" if clean else instance["patch"],
        "test_patch": "" if clean else instance.get("test_patch") or "",
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
