"""Reading unified diffs (plain Python, no Django): the one parser, the ``unidiff`` library,
behind every place that takes a patch apart — file sections for grading, single hunks for
validation, changed line numbers for the screen, the coverage map and near-duplicates.

``parse`` keeps each file's and each hunk's exact text (sliced from the patch by the line
numbers unidiff reports, never re-rendered), so the pieces put back together are the patch,
byte for byte. A patch unidiff cannot read (a hunk shorter or longer than its header says, a
hunk outside a file) raises ``MalformedPatch``."""
from __future__ import annotations

import io
from dataclasses import dataclass, field

from unidiff import PatchedFile, PatchSet, UnidiffParseError

DEV_NULL = "/dev/null"


class MalformedPatch(ValueError):
    """The text is not a unified diff unidiff can read."""


def strip_prefix(name: str | None) -> str:
    """A header's file name as a repository path ("" for /dev/null): quotes and the a/ or b/
    prefix removed."""
    name = (name or "").strip()
    if len(name) > 1 and name[0] == name[-1] == '"':
        name = name[1:-1]
    if name == DEV_NULL:
        return ""
    return name[2:] if name[:2] in ("a/", "b/") else name


@dataclass
class FilePatch:
    """One file's section of a patch: its parsed form and its exact text."""

    parsed: PatchedFile
    header: str  # from the section's first line (``diff --git`` or ``---``) to its first hunk
    hunks: list[str] = field(default_factory=list)  # each from its ``@@`` line to the next

    @property
    def text(self) -> str:
        return self.header + "".join(self.hunks)

    @property
    def source(self) -> str:
        """The path on the old side ("" for a new file)."""
        return strip_prefix(self.parsed.source_file)

    @property
    def target(self) -> str:
        """The path on the new side ("" for a deleted file)."""
        return strip_prefix(self.parsed.target_file)

    @property
    def paths(self) -> set[str]:
        """Every repository path the section touches (both sides of a rename or copy)."""
        return {p for p in (self.source, self.target) if p}


def split_lines(text: str) -> list[str]:
    """The text's lines, each with its end, split on "\\n" only (as unidiff numbers them: a
    stray "\\r" or form feed inside a line does not end it)."""
    return list(io.StringIO(text))


def _start(lines: list[str], f: PatchedFile) -> int:
    """The 0-based index of a file section's first line: its ``diff --git`` line, or the
    ``---`` line before the ``+++`` line unidiff numbers a plain section by."""
    at = f.diff_line_no - 1
    if lines[at].startswith("+++ ") and at > 0 and lines[at - 1].startswith("--- "):
        at -= 1
    return at


def parse(patch: str) -> list[FilePatch]:
    """The patch's file sections in order (text before the first section is left out)."""
    lines = split_lines(patch)
    try:
        parsed = PatchSet(lines)
    except UnidiffParseError as exc:
        raise MalformedPatch(f"not a readable unified diff: {exc}") from None
    starts = [_start(lines, f) for f in parsed]
    out = []
    for i, f in enumerate(parsed):
        end = starts[i + 1] if i + 1 < len(parsed) else len(lines)
        # a hunk's header stands just before its first body line (unidiff numbers from 1)
        heads = [h[0].diff_line_no - 2 for h in f if len(h) and h[0].diff_line_no]
        bounds = heads + [end]
        out.append(FilePatch(
            parsed=f, header="".join(lines[starts[i]:heads[0] if heads else end]),
            hunks=["".join(lines[a:b]) for a, b in zip(bounds, bounds[1:])],
        ))
    return out


def changed_lines(file_patch: PatchedFile | FilePatch, side: str = "new") -> set[int]:
    """Line numbers a file's diff touches: on the ``new`` side the lines it adds, on the
    ``old`` side the lines it removes."""
    parsed = file_patch.parsed if isinstance(file_patch, FilePatch) else file_patch
    if side == "new":
        return {line.target_line_no for hunk in parsed for line in hunk if line.is_added}
    return {line.source_line_no for hunk in parsed for line in hunk if line.is_removed}
