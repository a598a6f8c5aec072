"""The grader's pytest plugin: it runs INSIDE the sandbox (stdlib only, no BugForge imports).

The grader copies this file into the grading checkout under a random module name and loads it
with ``-p NAME`` (suite runs) or ``PYTEST_ADDOPTS`` (verifier runs). pytest imports ``-p``
plugins before any conftest or test module, so at import time no code under test has run yet:

* the plugin reads its HMAC key from ``NAME.key`` beside it and deletes the file;
* it duplicates stderr's file descriptor (the pipe the sandbox reads; pytest's capturing later
  swaps fd 2, the duplicate keeps pointing at the pipe);
* every test phase that is not a plain pass, every ``call`` phase, and the session's end go
  out at once as one signed, numbered line: ``\\x1eBFR <hmac> <json>``.

A record that left cannot be taken back: an ``atexit`` handler, a rewritten report file or a
forged exit code comes too late. A forged line lacks the key; a dropped line breaks the
numbering; a run that dies early has no ``finish`` record. See ``reward/stream.py``.
"""
import hashlib
import hmac
import json
import os

_key_path = os.path.splitext(os.path.abspath(__file__))[0] + ".key"
try:
    with open(_key_path, "rb") as _f:
        _KEY = _f.read()
    os.unlink(_key_path)
except OSError:  # the key went to the first process that loaded the plugin (a verifier that
    _KEY = None  # runs pytest in a subprocess): this one stays silent, the first one reports
_FD = os.dup(2)
_SEQ = [0]


def _emit(kind, **data):
    if _KEY is None:
        return
    body = json.dumps({"seq": _SEQ[0], "kind": kind, **data}, sort_keys=True, separators=(",", ":"))
    _SEQ[0] += 1
    mac = hmac.new(_KEY, body.encode(), hashlib.sha256).hexdigest()
    os.write(_FD, ("\n\x1eBFR " + mac + " " + body + "\n").encode())


def pytest_sessionstart(session):
    _emit("start")


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        _emit("report", id=report.nodeid, when=report.when, outcome=report.outcome,
              xfail=bool(getattr(report, "wasxfail", "")))


def pytest_sessionfinish(session, exitstatus):
    _emit("finish", exitstatus=int(exitstatus), failed=int(session.testsfailed),
          collected=int(getattr(session, "testscollected", 0) or 0))
