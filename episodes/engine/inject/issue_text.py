"""Issue text written by a model from a bug's patch and its failing tests (plain Python, no Django).

After SWE-smith: a statement an LM writes from the failing output trains better agents than a
template. Three styles:

* ``symptom`` — what the user did, what they expected and what happened; no location at all
  (no file, no function name);
* ``traceback`` — the same plus the failing traceback/output, scrubbed of the patched lines;
* ``function`` — may name the public function involved.

``write(client, context, style)`` asks the model (an ``LLMClient``) for a statement, checks it
with ``leaks()`` and regenerates (up to ``attempts``) while it leaks; the kept text carries its
leaks and ``underspecified()`` reasons as flags. The model never sees a verdict it must obey:
flags are for curators. Reply format::

    ### STATEMENT
    <the issue text>
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Callable

from episodes.engine import prompts
from episodes.engine.git import patches
from episodes.engine.inject.reply import _TEST_LEAKS, MalformedReply

STYLES = ("symptom", "traceback", "function")
MAX_PATCH_CHARS = 12_000
MAX_OUTPUT_CHARS = 8_000
MIN_CHARS = 120
MIN_LINE_CHARS = 10  # a patched line shorter than this (``else:``, ``return x``) is not evidence

STYLE_RULES = {
    "symptom": (
        "Describe only symptoms: what the user did (a short reproduction snippet using the public API is "
        "welcome), what they expected and what happened instead. Do not name any file, module path or "
        "the function that was changed, and do not include a traceback."
    ),
    "traceback": (
        "Describe what the user did, what they expected and what happened instead, and include the error "
        "output or traceback they saw (taken from the output below) in a fenced block. Do not name the "
        "line of code at fault."
    ),
    "function": (
        "Describe what the user did, what they expected and what happened instead. You may name the public "
        "function or method the user called that misbehaves, but not the lines of code at fault."
    ),
}

_PHRASES = (
    (re.compile(r"\bthe\s+(?:bug|problem|issue|error|mistake)\s+(?:is|lies|was|seems to be)\s+(?:in|at|on|caused)\b", re.I),
     "says where the bug is"),
    (re.compile(r"\bthe\s+(?:fix|solution|correction)\s+(?:is|would be|should be|was)\b", re.I), "gives the fix"),
    (re.compile(r"\b(?:to\s+fix\s+(?:this|it)|fixed\s+by|can\s+be\s+fixed)\b", re.I), "gives the fix"),
    (re.compile(r"\b(?:change|replace|swap)\s+[`'\"]?\S+[`'\"]?\s+(?:to|with|by|into)\s+\S+", re.I), "says what to change"),
    (re.compile(r"\b(?:caused\s+by|root\s+cause|off[- ]by[- ]one)\b", re.I), "names the cause"),
    (re.compile(r"^\s*[-+]{3}\s+[ab]/|^@@ .* @@", re.M), "contains a diff"),
)

_HEADER = re.compile(r"^\s{0,3}#{1,4}\s*STATEMENT\s*:?\s*$", re.I | re.M)
_OTHER_HEADER = re.compile(r"^\s{0,3}#{2,4}\s*[A-Z][A-Z _]+\s*:?\s*$", re.M)
_TRIVIAL = re.compile(r"^[\W\d_]*(?:return|pass|else|try|finally|break|continue|raise|none|true|false)?[\W\d_]*$", re.I)


class MalformedStatement(MalformedReply):
    """The model's reply holds no usable statement; ``reason`` says why."""


@dataclass
class IssueContext:
    patch: str  # the bug patch (clean -> buggy)
    test_output: str = ""  # the failing run's output excerpt (buggy code)
    failing_tests: list[str] = field(default_factory=list)  # FAIL_TO_PASS node ids
    verifier: str = ""
    target: str = ""  # "path::qualname" when known


@dataclass
class StatementResult:
    ok: bool
    text: str = ""
    style: str = ""
    leaks: list[str] = field(default_factory=list)
    underspecified: list[str] = field(default_factory=list)  # reasons; empty = well specified
    attempts: int = 0
    failures: list[str] = field(default_factory=list)
    cost_usd: float = 0.0

    @property
    def flags(self) -> dict:
        return {"leaks": self.leaks, "underspecified": bool(self.underspecified),
                "underspecified_reasons": self.underspecified, "attempts": self.attempts,
                "failures": self.failures}


# -- what the patch says ------------------------------------------------------------------------


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _files(patch: str) -> list[patches.FilePatch]:
    return patches.parse(patch or "")


def patch_lines(patch: str) -> list[str]:
    """The non-trivial added and removed lines of ``patch``, normalised (whitespace collapsed)."""
    out: list[str] = []
    changed = (line.value for fp in _files(patch) for hunk in fp.parsed for line in hunk if line.is_added or line.is_removed)
    for value in changed:
        body = _norm(value)
        if len(body) >= MIN_LINE_CHARS and not _TRIVIAL.match(body) and not body.startswith("#") and body not in out:
            out.append(body)
    return out


def changed_files(patch: str) -> list[str]:
    """The paths the patch leaves behind (new side), in order."""
    return list(dict.fromkeys(fp.target for fp in _files(patch) if fp.target))


def changed_functions(patch: str, target: str = "") -> list[str]:
    """Function names the patch touches: the target's qualname parts and the hunk headers' defs."""
    names: list[str] = []
    if "::" in target:
        names += target.split("::", 1)[1].split(".")[-1:]
    for fp in _files(patch):
        for hunk in fp.parsed:
            if m := re.search(r"\bdef\s+(\w+)", hunk.section_header):
                names.append(m.group(1))
    return [n for n in dict.fromkeys(names) if len(n) >= 4]


def scrub_output(output: str, patch: str) -> str:
    """The failing output without any line quoting a patched line, and without test paths/names."""
    changed = patch_lines(patch)
    kept = []
    for line in (output or "").splitlines():
        if any(c in _norm(line) for c in changed):
            continue
        kept.append(_clean_line(line))
    text = "\n".join(kept).strip()
    return text[-MAX_OUTPUT_CHARS:]


def verifier_evidence(verifier: str, failing_tests=()) -> list[str]:
    """What in the statement would copy the verifier: its distinctive lines, its asserted string
    literals and the failing tests' names."""
    out: list[str] = []
    for line in (verifier or "").splitlines():
        s = _norm(line)
        if len(s) >= 24 and not s.startswith(("import ", "from ", "#", "raise SystemExit", "sys.exit")):
            out.append(s)
    try:
        tree = ast.parse(verifier or "")
    except SyntaxError:
        tree = None
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Assert):
                for c in ast.walk(node):  # the test and its message
                    if isinstance(c, ast.Constant) and isinstance(c.value, str) and len(c.value.strip()) >= 6:
                        out.append(c.value.strip())
    for node_id in failing_tests:
        for part in node_id.split("::")[1:]:
            name = part.split("[")[0]
            if len(name) >= 6:
                out.append(name)
    return list(dict.fromkeys(out))


# -- checks -------------------------------------------------------------------------------------


def leaks(text: str, context: IssueContext, style: str) -> list[str]:
    """Every way ``text`` gives the bug away: a patched line, verifier content, a give-away
    phrase, a test reference, and (style ``symptom``) the changed file or function name."""
    found: list[str] = []
    flat = _norm(text)
    for line in patch_lines(context.patch):
        if line in flat:
            found.append(f"quotes a patched line: {line!r}")
    for item in verifier_evidence(context.verifier, context.failing_tests):
        if _norm(item) in flat:
            found.append(f"quotes the verifier: {item!r}")
    for pattern, why in _PHRASES:
        m = pattern.search(text)
        if m:
            found.append(f"{why}: {m.group(0).strip()!r}")
    for pattern, why in _TEST_LEAKS:
        m = pattern.search(text)
        if m:
            found.append(f"{why}: {m.group(0)!r}")
    if style == "symptom":
        for path in changed_files(context.patch):
            base = path.rsplit("/", 1)[-1]
            for name in dict.fromkeys((path, base, path[:-3].replace("/", ".") if path.endswith(".py") else path)):
                if name in text:
                    found.append(f"names the changed file: {name!r}")
                    break
        for name in changed_functions(context.patch, context.target):
            if re.search(rf"\b{re.escape(name)}\b", text):
                found.append(f"names the changed function: {name!r}")
    return list(dict.fromkeys(found))


_EXPECT = re.compile(r"\b(?:expect(?:ed|s|ing)?|should|ought to|supposed to|used to|instead of|documented)\b", re.I)
_ACTUAL = re.compile(r"\b(?:instead|but|actual(?:ly)?|got|gets|returns|raises|gives|shows|now)\b", re.I)
_REPRO = re.compile(r"```|`[^`\n]+`|>>>|\b(?:steps to reproduce|to reproduce|when I|if I|calling|call)\b", re.I)


def underspecified(text: str) -> list[str]:
    """Why a developer could not act on ``text`` (empty when it is specific enough)."""
    reasons: list[str] = []
    if len(text.strip()) < MIN_CHARS:
        reasons.append(f"too short ({len(text.strip())} characters, at least {MIN_CHARS})")
    if not (_EXPECT.search(text) and _ACTUAL.search(text)):
        reasons.append("no expected-vs-actual behaviour")
    if not _REPRO.search(text):
        reasons.append("no reproduction (no snippet, call or steps)")
    return reasons


# -- prompt and reply ---------------------------------------------------------------------------


def build_prompt(context: IssueContext, style: str) -> tuple[str, str]:
    if style not in STYLES:
        raise ValueError(f"unknown statement style {style!r} (expected one of {', '.join(STYLES)})")
    output = scrub_output(context.test_output, context.patch)
    parts = [
        "A change planted the bug below. Write the issue a user of the library would file about it.",
        f"Bug patch (for you only; never quote it):\n```diff\n{context.patch[:MAX_PATCH_CHARS].rstrip()}\n```",
    ]
    if output:
        parts.append(f"What failing code printed:\n```\n{output}\n```")
    rules = [STYLE_RULES[style],
             "Never say where the bug is, what causes it or how to fix it; never quote the changed lines.",
             "Never mention tests, test files, test names or test tools."]
    if style == "symptom" and (files := changed_files(context.patch)):
        rules.append(f"Do not mention {', '.join(files)} or any name defined in the patch's hunks.")
    parts.append("Rules:\n" + "\n".join(f"- {r}" for r in rules))
    parts.append("Reply with exactly one section and nothing else:\n\n### STATEMENT\n<the issue text, in markdown>")
    return prompts.render("issue_text_system"), "\n\n".join(parts)


def parse_reply(text: str) -> str:
    """The statement in a reply; ``MalformedStatement`` when there is none."""
    headers = list(_HEADER.finditer(text or ""))
    if not headers:
        raise MalformedStatement("the reply has no '### STATEMENT' section")
    if len(headers) > 1:
        raise MalformedStatement(f"the reply has {len(headers)} '### STATEMENT' sections; exactly one is allowed")
    body = text[headers[0].end():]
    other = _OTHER_HEADER.search(body)
    if other and other.group(0).strip().lstrip("#").strip().isupper() and len(other.group(0).strip()) > 4:
        body = body[: other.start()]
    body = body.strip()
    if body.startswith(("```", "~~~")) and body.endswith(("```", "~~~")) and body.count("```") == 2:
        body = "\n".join(body.splitlines()[1:-1]).strip()
    if not body:
        raise MalformedStatement("the STATEMENT section is empty")
    return body + "\n"


def write(client, context: IssueContext, style: str, attempts: int = 3,
          on_call: Callable | None = None) -> StatementResult:
    """Up to ``attempts`` model calls; stops at the first leak-free statement, else keeps the one
    with the fewest leaks (flagged). Never raises for what the model or the upstream does."""
    system, prompt = build_prompt(context, style)
    result = StatementResult(ok=False, style=style)
    best: tuple[str, list[str]] | None = None
    messages = [{"role": "user", "content": prompt}]
    for attempt in range(1, attempts + 1):
        reply = client.complete(system, messages)
        result.attempts += 1
        result.cost_usd += reply.cost_usd or 0.0
        if on_call is not None:
            on_call(reply)
        if reply.error:
            result.failures.append(f"attempt {attempt}: upstream error: {reply.error}")
            continue
        try:
            text = parse_reply(reply.text)
        except MalformedStatement as exc:
            result.failures.append(f"attempt {attempt}: malformed reply: {exc.reason}")
            retry = f"Your reply could not be used: {exc.reason}. Reply again with one '### STATEMENT' section."
        else:
            found = leaks(text, context, style)
            if best is None or len(found) < len(best[1]):
                best = (text, found)
            if not found:
                break
            result.failures.append(f"attempt {attempt}: leaks: {'; '.join(found)}")
            retry = ("Your issue gives the bug away: " + "; ".join(found)
                     + ". Write it again describing only what a user observes, in the same format.")
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply.text},
                    {"role": "user", "content": retry}]
    if best is not None:
        result.ok, result.text, result.leaks = True, best[0], best[1]
        result.underspecified = underspecified(best[0])
    return result


# -- fallback problem statements ---------------------------------------------------------------

_NODE_ID = re.compile(r"\S*\.py::\S+")
_TEST_PATH = re.compile(r"(?:[\w./-]*/)?(?:tests?/[\w./-]*|test_\w*\.py|\w+_test\.py)(?::\d+)?:?")
_TEST_IDENT = re.compile(r"\b(?:test_\w+|\w+_test|Test[A-Z]\w*)\b")
_EXCEPTION_LINE = re.compile(r"^[\w.]*(?:Error|Exception)\b:?.*$")


def _clean_line(line: str) -> str:
    line = _NODE_ID.sub("", line)
    line = _TEST_PATH.sub("", line)
    line = _TEST_IDENT.sub("the check", line)
    return line.rstrip()


# pytest's own explanations (introspection, diff hints): tooling, never what a user would see
_PYTEST_CHATTER = re.compile(r"^(\+|Use -v to get|Full diff:|Omitting \d+ identical items|At index \d+ diff:|\?)")
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")


def problem_statement_from_failure(test_output: str, qualname: str, path: str = "") -> str:
    """An issue-style statement from a failing run's assertion text, for bugs planted without a
    model. Test names, paths and tooling are stripped; it never asks anyone to run tests, and it
    never names the changed function (``qualname``) or its file: a statement that does localizes
    the bug for free, so the solver learns nothing about finding it. The symptom is all it
    gives: the failing assertion or the exception, as a user would see it."""
    candidates = [ln[1:].strip() for ln in (test_output or "").splitlines() if ln.startswith("E ")]
    if not candidates:  # no pytest assertion lines: fall back to exception lines
        candidates = [ln.strip() for ln in (test_output or "").splitlines() if _EXCEPTION_LINE.match(ln.strip())]
    names = {part for part in qualname.split(".") if len(part) > 2}
    module = path[:-3].replace("/", ".") if path.endswith(".py") else ""  # cartcalc.shipping in a repr
    if path:
        names.add(path.rsplit("/", 1)[-1])
    evidence: list[str] = []
    for text in candidates:
        if not text or re.search(r"py\.?test|unittest|conftest", text, re.I) or _PYTEST_CHATTER.match(text):
            continue
        text = _ADDRESS.sub("0x…", _clean_line(text))
        if any(re.search(rf"\b{re.escape(n)}\b", text) for n in names) or (module and module in text):
            continue  # a line naming the changed code would point at the fix
        if text.strip() and text not in evidence:
            evidence.append(text)
        if len(evidence) >= 12:
            break
    error = next((m.group(1) for m in (re.match(r"([A-Z]\w*(?:Error|Exception))\b", e) for e in evidence)
                  if m and m.group(1) != "AssertionError"), "")
    lines = [f"{error} since the last change" if error else "Wrong results since the last change", ""]
    lines.append("Since the last change, code that relies on the library no longer behaves as documented: "
                 "some inputs that used to work now give a different result or an error.")
    if evidence:
        lines += ["", "What I see:", "", "```", *evidence, "```"]
    lines += ["", "Expected: the behaviour the documentation and the rest of the library describe."]
    return "\n".join(lines) + "\n"
