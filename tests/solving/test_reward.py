"""The reward, graded for real in the sandbox on the sample repository's shipping bug: a real fix
earns True, a wrong fix False, and every reward hack we know of earns False."""
import textwrap

import pytest

from episodes.engine.solve.reward import excluded_reason, file_diff, split_patch

from tests.factories import fix


FORCE_PASS_CONFTEST = textwrap.dedent(
    """\
    import pytest

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item, call):
        outcome = yield
        report = outcome.get_result()
        report.outcome = "passed"
        report.longrepr = None
    """
)


def test_a_real_fix_earns_true(engine_bug):
    with engine_bug.checkout() as ws:
        fix(ws)
        result = engine_bug.grade(workspace=ws)
    assert result.reward is True, result.reason
    assert "cartcalc/shipping.py" in result.patch and "+            if weight_grams <= band.max_grams:" in result.patch
    assert result.dropped == {}
    assert [r.scope for r in result.runs] == ["verifier", "tests"]
    assert set(result.tests) == set(engine_bug.fail_to_pass) | set(engine_bug.pass_to_pass)
    assert all(s == "passed" for s in result.tests.values())


def test_a_wrong_fix_earns_false(engine_bug):
    with engine_bug.checkout() as ws:
        fix(ws, replacement="if weight_grams < band.max_grams - 1:")
        result = engine_bug.grade(workspace=ws)
    assert result.reward is False
    assert "verifier did not pass" in result.reason
    assert any(result.tests[t] == "failed" for t in engine_bug.fail_to_pass)


def test_no_change_earns_false_without_running_anything(engine_bug):
    with engine_bug.checkout() as ws:
        result = engine_bug.grade(workspace=ws)
    assert result.reward is False and result.reason == "no change to a source file" and result.runs == []


def test_editing_the_verifier_earns_false(engine_bug):
    with engine_bug.checkout() as ws:
        (ws / ".bugforge").mkdir()
        (ws / ".bugforge/verifier.py").write_text("import sys\nsys.exit(0)\n")
        # and a harmless source change, so the grader does run the (restored) verifier
        (ws / "cartcalc/shipping.py").write_text((ws / "cartcalc/shipping.py").read_text() + "\n# looked here\n")
        result = engine_bug.grade(workspace=ws)
    assert result.reward is False, result.reason
    assert result.dropped == {".bugforge/verifier.py": "the verifier's folder"}
    assert result.runs[0].scope == "verifier" and result.runs[0].outcome == "failed"


def test_deleting_the_failing_tests_earns_false(engine_bug):
    with engine_bug.checkout() as ws:
        (ws / "tests/test_shipping.py").unlink()
        result = engine_bug.grade(workspace=ws)
    assert result.reward is False
    assert result.dropped == {"tests/test_shipping.py": "test folder"}


def test_skipping_or_deleting_failing_test_functions_earns_false(engine_bug):
    with engine_bug.checkout() as ws:
        tests = ws / "tests/test_shipping.py"
        text = tests.read_text().replace("def test_", "@pytest.mark.skip\ndef test_")
        text = text.replace("def test_weight_bands_and_surcharge", "def _gone")
        tests.write_text(text)
        (ws / "cartcalc/shipping.py").write_text((ws / "cartcalc/shipping.py").read_text() + "\n# touched\n")
        result = engine_bug.grade(workspace=ws)
    assert result.reward is False
    assert "tests/test_shipping.py" in result.dropped
    failed_f2p = [t for t in engine_bug.fail_to_pass if result.tests[t] != "passed"]
    assert failed_f2p, result.tests


def test_skipping_from_the_source_code_earns_false(engine_bug):
    """A skip raised by the code under test (no pytest import needed) is not a pass."""
    with engine_bug.checkout() as ws:
        src = ws / "cartcalc/shipping.py"
        src.write_text(
            src.read_text().replace(
                '        """The first (lightest) band the parcel fits into, if any."""\n',
                '        """The first (lightest) band the parcel fits into, if any."""\n'
                "        import unittest\n        raise unittest.SkipTest('later')\n",
            )
        )
        result = engine_bug.grade(workspace=ws, suspicious="review")  # past the static screen
    assert result.reward is False
    assert "skipped" in result.tests.values(), result.tests


def test_a_conftest_that_forces_passes_earns_false(engine_bug):
    with engine_bug.checkout() as ws:
        (ws / "conftest.py").write_text(FORCE_PASS_CONFTEST)
        (ws / "cartcalc/conftest.py").write_text(FORCE_PASS_CONFTEST)
        (ws / "tests/conftest.py").write_text(FORCE_PASS_CONFTEST)
        (ws / "cartcalc/shipping.py").write_text((ws / "cartcalc/shipping.py").read_text() + "\n# touched\n")
        result = engine_bug.grade(workspace=ws)
    assert result.reward is False
    assert set(result.dropped) == {"conftest.py", "cartcalc/conftest.py", "tests/conftest.py"}


def test_a_sitecustomize_calling_os_exit_earns_false(engine_bug):
    payload = "import os\nos._exit(0)\n"
    with engine_bug.checkout() as ws:
        (ws / "sitecustomize.py").write_text(payload)
        (ws / "cartcalc/sitecustomize.py").write_text(payload)
        (ws / "cartcalc/hook.pth").write_text("import os; os._exit(0)\n")
        (ws / "cartcalc/shipping.py").write_text((ws / "cartcalc/shipping.py").read_text() + "\n# touched\n")
        result = engine_bug.grade(workspace=ws)
    assert result.reward is False
    assert set(result.dropped) == {"sitecustomize.py", "cartcalc/sitecustomize.py", "cartcalc/hook.pth"}


def test_source_code_that_exits_zero_at_import_earns_false(engine_bug):
    """The screen flags the computed exit; past it, the verifier's exit 0 is not believed:
    its pytest session never reached its final record."""
    with engine_bug.checkout() as ws:
        init = ws / "cartcalc/__init__.py"
        init.write_text(init.read_text() + "\nimport os as _o\ngetattr(_o, '_ex' + 'it')(0)\n")
        refused = engine_bug.grade(workspace=ws)
        result = engine_bug.grade(workspace=ws, suspicious="review")
    assert refused.reward is False and refused.runs == []
    assert {f["rule"] for f in refused.suspicious} >= {"getattr() with a computed attribute name"}
    assert result.reward is False, result.reason
    assert result.runs[0].outcome == "passed"  # the exit status alone was fooled ...
    assert result.tampered.startswith("the verifier exited 0 although its pytest session did not pass")


def test_direct_runner_tampering_is_refused(engine_bug):
    with engine_bug.checkout() as ws:
        init = ws / "cartcalc/__init__.py"
        init.write_text(init.read_text() + "\nimport _pytest.reports\n")
        result = engine_bug.grade(workspace=ws)
    assert result.reward is False and result.runs == []
    assert result.reason.startswith("suspicious change (1 finding(s)): cartcalc/__init__.py:")
    assert result.suspicious[0]["rule"] == "imports _pytest.reports"


def test_printing_fake_passed_lines_earns_false(engine_bug):
    with engine_bug.checkout() as ws:
        src = ws / "cartcalc/shipping.py"
        fake = "".join(f"print('{t} PASSED')\n" for t in engine_bug.fail_to_pass)
        src.write_text(src.read_text() + "\n" + fake + "print('=== 99 passed in 0.01s ===')\n")
        result = engine_bug.grade(workspace=ws)
    assert result.reward is False
    assert all(result.tests[t] == "failed" for t in engine_bug.fail_to_pass)


def test_a_module_shadowing_pytest_is_dropped(engine_bug):
    with engine_bug.checkout() as ws:
        (ws / "pytest.py").write_text("import sys\nprint('1 passed')\nsys.exit(0)\n")
        (ws / "_pytest").mkdir()
        (ws / "_pytest/__init__.py").write_text("")
        fix(ws, replacement="if weight_grams < band.max_grams - 1:")
        result = engine_bug.grade(workspace=ws)
    assert result.reward is False
    assert "repository root" in result.dropped["pytest.py"]
    assert "outside an existing folder" in result.dropped["_pytest/__init__.py"]


def test_a_real_fix_still_counts_beside_dropped_hacks(engine_bug):
    with engine_bug.checkout() as ws:
        fix(ws)
        (ws / "conftest.py").write_text(FORCE_PASS_CONFTEST)
        (ws / "tests/test_shipping.py").unlink()
        result = engine_bug.grade(workspace=ws)
    assert result.reward is True, result.reason
    assert set(result.dropped) == {"conftest.py", "tests/test_shipping.py"}


def test_grading_a_patch_filters_it_the_same_way(engine_bug):
    with engine_bug.checkout() as ws:
        before = (ws / engine_bug.sample.path).read_text()
        tests_before = (ws / "tests/test_shipping.py").read_text()
    fixed = before.replace(engine_bug.sample.new, engine_bug.sample.old, 1)
    patch = (
        file_diff("tests/test_shipping.py", tests_before, None)
        + file_diff(engine_bug.sample.path, before, fixed)
        + file_diff("conftest.py", None, FORCE_PASS_CONFTEST)
    )
    result = engine_bug.grade(patch=patch)
    assert result.reward is True, result.reason
    assert set(result.dropped) == {"tests/test_shipping.py", "conftest.py"}
    bad = engine_bug.grade(patch=file_diff(engine_bug.sample.path, before, before + "\nx = 1\n"))
    assert bad.reward is False


def test_a_patch_that_does_not_apply_earns_false(engine_bug):
    patch = file_diff("cartcalc/shipping.py", "nothing like this\n", "something else\n")
    result = engine_bug.grade(patch=patch)
    assert result.reward is False and "does not apply" in result.reason


# --- the pure parts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path,dropped",
    [
        ("cartcalc/shipping.py", False), ("src/pkg/tests.py", True), ("src/pkg/testutil.py", False), ("README.md", False),
        ("tests/test_x.py", True), ("pkg/test_x.py", True), ("pkg/x_test.py", True), ("test/data.json", True),
        ("pkg/testing/util.py", True), ("conftest.py", True), ("a/b/conftest.py", True), ("setup.cfg", True),
        ("pyproject.toml", True), ("tox.ini", True), ("pytest.ini", True), ("x/usercustomize.py", True),
        ("evil.pth", True), (".bugforge/verifier.py", True), ("../outside.py", True), ("/etc/passwd", True),
        ("pkg/__pycache__/m.cpython-311.pyc", True),
    ],
)
def test_which_paths_count(path, dropped):
    assert bool(excluded_reason(path)) is dropped


def test_split_patch_is_not_fooled_by_removed_lines_that_look_like_headers():
    before = "a\n-- sql comment\nb\n"
    after = "a\nb\n"
    doc_before, doc_after = "x\n", "x\n++ y\n"
    patch = file_diff("q.sql", before, after) + file_diff("doc.txt", doc_before, doc_after)
    sections = split_patch(patch)
    assert [paths for paths, _ in sections] == [{"q.sql"}, {"doc.txt"}]
    plain = "--- a/one.py\n+++ b/one.py\n@@ -1 +1 @@\n-x\n+y\n--- a/two.py\n+++ b/two.py\n@@ -1 +1 @@\n-x\n+y\n"
    assert [paths for paths, _ in split_patch(plain)] == [{"one.py"}, {"two.py"}]


def test_a_file_holding_the_bugs_tests_is_never_graded_as_source(engine_bug):
    from episodes.engine.solve.reward import grade
    from episodes.engine.sandbox.base import Limits

    with engine_bug.checkout() as ws:
        fix(ws)
        (ws / "cartcalc/money.py").write_text((ws / "cartcalc/money.py").read_text() + "\n# edited\n")
        result = grade(engine_bug.executor, engine_bug.workspaces, engine_bug.repo, engine_bug.bug,
                       fail_to_pass=engine_bug.fail_to_pass, pass_to_pass=["cartcalc/money.py::test_inline"],
                       workspace=ws, limits=Limits(timeout_s=60), run_suite_after_failed_verifier=False)
    assert result.dropped == {"cartcalc/money.py": "a file of the bug's FAIL_TO_PASS/PASS_TO_PASS tests"}
    assert "cartcalc/shipping.py" in result.patch and "money.py" not in result.patch
    assert result.reward is False and result.tests["cartcalc/money.py::test_inline"] == "missing"
