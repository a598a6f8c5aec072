"""Patches read with unidiff (episodes.engine.git.patches): sections and hunks keep their exact
text, removed lines that look like headers stay in their hunk, malformed patches are refused."""
import pytest

from episodes.engine.git import patches
from episodes.engine.validate import coverage_map
from episodes.engine.inject.mutators.realism import changed_lines
from episodes.engine.git.workspace import join_hunks, split_hunks, unified_diff

PATCH = (
    "diff --git a/m.py b/m.py\nindex 1111111..2222222 100644\n--- a/m.py\n+++ b/m.py\n"
    "@@ -1,3 +1,3 @@ def f():\n a\n-if x <= y:\n+if x < y:\n c\n@@ -10,2 +10,2 @@\n q\n---- x\n++++ y\n"
    "diff --git a/n.py b/n.py\nnew file mode 100644\n--- /dev/null\n+++ b/n.py\n@@ -0,0 +1 @@\n+x\n"
    "\\ No newline at end of file\n"
    "--- a/plain.py\n+++ b/plain.py\n@@ -1 +1 @@\n-a\r\n+b\x0c\r\n"
    "diff --git a/a.py b/b.py\nsimilarity index 100%\nrename from a.py\nrename to b.py\n"
)


def test_sections_and_hunks_are_the_patch_byte_for_byte():
    sections = patches.parse(PATCH)
    assert [s.paths for s in sections] == [{"m.py"}, {"n.py"}, {"plain.py"}, {"a.py", "b.py"}]
    assert "".join(s.text for s in sections) == PATCH
    assert [len(s.hunks) for s in sections] == [2, 1, 1, 0]
    assert sections[0].hunks[1] == "@@ -10,2 +10,2 @@\n q\n---- x\n++++ y\n"  # not a new file
    hunks = split_hunks(PATCH)
    assert len(hunks) == 4 and join_hunks(hunks) == "".join(s.text for s in sections[:3])
    assert patches.changed_lines(sections[0]) == {2, 11} and patches.changed_lines(sections[0], "old") == {2, 11}


def test_a_malformed_patch_is_refused():
    with pytest.raises(patches.MalformedPatch, match="shorter than expected"):
        patches.parse("--- a/x.py\n+++ b/x.py\n@@ -1,3 +1,3 @@\n a\n")


def test_near_duplicates_and_the_coverage_map_read_the_same_lines():
    before = "".join(f"line{i}\n" for i in range(1, 21))
    patch = unified_diff("lib.py", before, before.replace("line5\n", "LINE5\n").replace("line15\n", "x\nline15\n"))
    assert changed_lines(patch) == {("lib.py", 5), ("lib.py", 15)}
    cmap = {"tests": ["t::a", "t::b"], "lines": {"lib.py": {"5": [0], "4": [0], "14": [1], "15": [1]}}}
    assert coverage_map.tests_for_patch(cmap, patch) == ["t::a", "t::b"]
    assert coverage_map.tests_for_patch(cmap, unified_diff("new.py", None, "x = 1\n")) is None  # a new file: the whole suite
