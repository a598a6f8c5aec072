"""Which tests a patch can affect, from the coverage map — and when the map cannot tell."""
from episodes.engine.validate import coverage_map  # its functions' names start with "tests_": not imported bare
from episodes.engine.git.workspace import unified_diff

SOURCE = "RATE = 2\n\n\ndef f(x):\n    if x > 0:\n        return x * RATE\n    return 0\n\n\ndef g():\n    return 1\n"
# tests/t.py::a runs f's positive branch, ::b its other branch, ::c runs g
MAP = {"tests": ["tests/t.py::a", "tests/t.py::b", "tests/t.py::c"], "sets": [[0, 1], [0], [1], [2]],
       "lines": {"lib.py": {"5": 0, "6": 1, "7": 2, "11": 3}}}


def patch(old, new):
    return unified_diff("lib.py", SOURCE, SOURCE.replace(old, new))


def test_a_changed_line_needs_only_the_tests_running_near_it():
    assert coverage_map.tests_for_patch(MAP, patch("return 1", "return 2")) == ["tests/t.py::c"]
    assert coverage_map.tests_for_patch(MAP, patch("return x * RATE", "return x + RATE")) == ["tests/t.py::a", "tests/t.py::b"]
    assert coverage_map.tests_covering(MAP, "lib.py", 5, 7) == ["tests/t.py::a", "tests/t.py::b"]


def test_import_time_lines_new_files_and_unmapped_files_need_the_whole_suite():
    assert coverage_map.tests_for_patch(MAP, patch("RATE = 2", "RATE = 3")) is None  # run at import: every test sees it
    assert coverage_map.tests_for_patch(MAP, unified_diff("other.py", "x = 1\n", "x = 2\n")) is None
    assert coverage_map.tests_for_patch(MAP, "diff --git a/n.py b/n.py\n--- /dev/null\n+++ b/n.py\n@@ -0,0 +1 @@\n+x = 1\n") is None


def test_the_earlier_map_form_is_still_read():
    old = {"tests": ["t::a", "t::b"], "lines": {"lib.py": {"6": [1]}}}
    assert coverage_map.tests_covering(old, "lib.py", 1, 9) == ["t::b"]
