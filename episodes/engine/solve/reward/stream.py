"""Per-test results that the code under test cannot rewrite (plain Python, no Django).

``install(checkout)`` puts the grader's pytest plugin (``report_plugin.py``) into the grading
checkout under a random name with a fresh key; ``parse(stderr, key)`` reads the signed records
it streamed out of the sandbox and says whether they hold together. ``add_canary`` writes a
test that must fail: a run that reports it passed was tampered with.

What one suite run must show for its results to count (``check``):

* every record carries a valid HMAC and the records are numbered 0, 1, 2, … with no gap;
* a ``start`` and a ``finish`` record (the session ran to its end);
* the canary is reported and not passed;
* the process's exit status equals the one pytest recorded at ``finish`` (1: the canary
  failed), and pytest's own summary line agrees with the records' counts.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

PLUGIN_SOURCE = Path(__file__).with_name("report_plugin.py")
_RECORD = re.compile(r"^\x1eBFR ([0-9a-f]{64}) (\{.*\})\r?$")
MARKER = "\x1eBFR"
_SUMMARY = re.compile(r"^=*\s*((?:\d+ \w+(?:, )?)+) in [\d.]+s")
_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")
_WORDS = ("alpha", "bounds", "cases", "edge", "extra", "input", "limits", "more", "regress", "values")


def private_folder() -> str:
    """A fresh name for a folder of the grader's own files in a grading checkout: a hidden folder
    (pytest never collects it) with nothing fixed in its name for graded code to look for."""
    return f".{secrets.token_hex(5)}"


@dataclass(frozen=True)
class Plugin:
    module: str
    key: bytes
    folder: str  # relative to the checkout; what goes on PYTHONPATH


def install(checkout: Path) -> Plugin:
    """Copy the plugin into a private folder of ``checkout`` as ``_<random>.py`` with its key."""
    module, folder = f"_{secrets.token_hex(6)}", private_folder()
    key = secrets.token_bytes(32)
    (Path(checkout) / folder).mkdir()
    (Path(checkout) / folder / f"{module}.py").write_text(PLUGIN_SOURCE.read_text())
    (Path(checkout) / folder / f"{module}.key").write_bytes(key)
    return Plugin(module, key, folder)


def add_canary(checkout: Path, near_test: str) -> str:
    """A failing test beside ``near_test``'s file, named like any other; returns its node id."""
    folder = PurePosixPath(near_test.split("::")[0]).parent
    word = secrets.choice(_WORDS)
    name = f"test_{word}_{secrets.token_hex(3)}"
    a, b = secrets.randbelow(900) + 100, secrets.randbelow(900) + 100
    rel = (folder / f"{name}.py").as_posix()
    (Path(checkout) / rel).write_text(
        f"def {name}():\n    values = [{a}, {b}]\n    assert sum(values) == {a + b + 1}\n"
    )
    return f"{rel}::{name}"


@dataclass
class Stream:
    records: list[dict] = field(default_factory=list)
    forged: int = 0  # marker lines whose signature does not verify
    broken: str = ""  # why the numbering or the framing does not hold

    @property
    def finish(self) -> dict | None:
        return next((r for r in self.records if r["kind"] == "finish"), None)

    @property
    def started(self) -> bool:
        return any(r["kind"] == "start" for r in self.records)

    def statuses(self) -> dict[str, str]:
        """{test id: passed | failed | error | skipped} from the phase records."""
        out: dict[str, str] = {}
        for r in self.records:
            if r["kind"] != "report":
                continue
            test, when, outcome = r["id"], r["when"], r["outcome"]
            if r.get("xfail"):
                outcome = "skipped"  # an expected failure, or an unexpected pass: never a pass
            if when in ("setup", "teardown") and outcome == "failed":
                out[test] = "error"
            elif when == "call":
                out[test] = out.get(test) if out.get(test) == "error" else outcome
            elif outcome == "skipped":
                out.setdefault(test, "skipped")
        return out


def parse(stderr: str, key: bytes) -> Stream:
    stream = Stream()
    for line in stderr.split("\n"):  # not splitlines(): it splits at the record separator too
        if MARKER not in line:
            continue
        m = _RECORD.match(line)
        body = m.group(2) if m else ""
        if not m or not hmac.compare_digest(m.group(1), hmac.new(key, body.encode(), hashlib.sha256).hexdigest()):
            stream.forged += 1
            continue
        record = json.loads(body)
        if record.get("seq") != len(stream.records):
            stream.broken = stream.broken or f"record {len(stream.records)} is numbered {record.get('seq')}"
        stream.records.append(record)
    return stream


def summary_counts(stdout: str) -> dict[str, int] | None:
    """pytest's closing line ("1 failed, 12 passed in 0.31s") as counts, None if absent."""
    for line in reversed(stdout.splitlines()):
        m = _SUMMARY.match(line.strip())
        if m:
            counts: dict[str, int] = {}
            for n, word in _COUNT.findall(m.group(1)):
                word = "error" if word.startswith("error") else word
                counts[word] = counts.get(word, 0) + int(n)
            return counts
    return None


def check(stream: Stream, exit_code: int | None, stdout: str, canary: str | None) -> str:
    """Why this run's results cannot be trusted ("" when they can)."""
    if stream.forged:
        return f"{stream.forged} result record(s) with a bad signature were printed (forged results)"
    if stream.broken:
        return f"the result records are out of sequence ({stream.broken})"
    if not stream.started or stream.finish is None:
        return "the test run ended before its results were complete (no final record)"
    if stream.records[-1]["kind"] != "finish":
        return "result records arrived after the session's final record"
    phases = [(r["id"], r["when"]) for r in stream.records if r["kind"] == "report"]
    if len(phases) != len(set(phases)):
        return "a test phase was reported twice"
    statuses = stream.statuses()
    if canary is not None:
        if canary not in statuses:
            return "the canary test is missing from the results"
        if statuses[canary] in ("passed", "skipped"):
            return f"the canary test, which always fails, was reported {statuses[canary]}"
    finish = stream.finish
    if exit_code != finish["exitstatus"]:
        return f"the process exited {exit_code} but pytest finished with status {finish['exitstatus']}"
    counts = summary_counts(stdout)
    if counts is None:
        return "pytest's summary line is missing"
    seen = list(statuses.values())
    for word in ("passed", "failed"):
        if counts.get(word, 0) != seen.count(word):
            return f"pytest's summary says {counts.get(word, 0)} {word}, the records {seen.count(word)}"
    return ""
