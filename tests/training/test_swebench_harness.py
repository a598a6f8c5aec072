"""The SWE-bench export checked with the real ``swebench`` package (swebench==5.0.2, pinned in
requirements-dev.txt), without Docker: its loader reads the JSONL, its ``make_test_spec`` builds
the TestSpec, and its own pytest log parser and grader score an eval run of the instance — the
eval script a harness container runs, run here in a clone of the exported bundle — as not
resolved without the gold patch and resolved with it.

swebench 5 keeps nothing per repository: ``make_test_spec`` takes the harness fields (``image``,
``eval_script``, ``log_parser``, ``eval_type``) from the instance itself, and BugForge's export
does not write them (there is no image to name), so the test adds them the way SWE-bench's own
datasets carry them; every other field is the export's."""
import json
import shlex
import subprocess
import sys

import pytest
from django.core.management import call_command

from tests.factories import add_sample_bug

pytestmark = pytest.mark.django_db

DELIMITER = "EOF_114329324912"  # SWE-bench's heredoc delimiter for patches in eval scripts


def eval_script(instance: dict, testbed) -> str:
    """An eval.sh shaped like SWE-bench's: apply test_patch, run the test files (SWE-bench's
    test directives; not the ids, which the harness's form may have cut) between the markers."""
    from swebench.harness.constants import END_TEST_OUTPUT, START_TEST_OUTPUT

    ids = json.loads(instance["FAIL_TO_PASS"]) + json.loads(instance["PASS_TO_PASS"])
    tests = list(dict.fromkeys(t.split("::")[0] for t in ids))
    return "\n".join([
        "#!/bin/bash", "set -uxo pipefail", f"cd {shlex.quote(str(testbed))}",
        f"git apply -v - <<'{DELIMITER}'\n{instance['test_patch']}\n{DELIMITER}",
        f"echo '{START_TEST_OUTPUT}'",
        f"{shlex.quote(sys.executable)} -m pytest -rA -p no:cacheprovider {' '.join(map(shlex.quote, tests))}",
        f"echo '{END_TEST_OUTPUT}'",
        "git checkout -- .",
    ]) + "\n"


def run_eval(spec, clone, log_path, model_patch: str) -> None:
    """What the harness does in a fresh container: apply the prediction, run the eval script, keep the log."""
    subprocess.run(["git", "reset", "--hard", "--quiet"], cwd=clone, check=True)
    subprocess.run(["git", "clean", "-fdxq"], cwd=clone, check=True)
    if model_patch:
        subprocess.run(["git", "apply", "-"], cwd=clone, input=model_patch, text=True, check=True)
    proc = subprocess.run(["bash", "-c", spec.eval_script], cwd=clone, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(clone), "PYTHONDONTWRITEBYTECODE": "1",
                               "HOME": str(clone.parent)})
    log_path.write_text(proc.stdout + proc.stderr)


def test_the_real_swebench_package_loads_and_grades_the_export(sample_repo, tmp_path):
    from swebench.harness.grading import get_eval_report
    from swebench.harness.utils import load_swebench_dataset, make_test_spec
    from swebench.types import SWEbenchInstance, TestSpec

    bug = add_sample_bug(sample_repo, 0)
    out = tmp_path / "export" / "bugs.jsonl"
    out.parent.mkdir()
    call_command("export_swebench", str(out))

    # swebench's own loader (local .jsonl), every SWEbenchInstance field a string as it declares
    [instance] = load_swebench_dataset(str(out))
    assert instance["instance_id"] == f"cartcalc__bugforge-{bug.pk}"
    declared = SWEbenchInstance.__annotations__
    assert set(declared) <= set(instance) and all(isinstance(instance[f], str) for f in declared)
    assert load_swebench_dataset(str(out), instance_ids=[instance["instance_id"]]) == [instance]

    # a clone of the bundle at base_commit is the harness's /testbed
    clone = tmp_path / "testbed"
    bundle = str(out.parent / instance["bugforge"]["bundle"])
    for args, cwd in ((["clone", "--quiet", bundle, str(clone)], tmp_path),
                      (["fetch", "--quiet", bundle, "refs/bugforge/*:refs/bugforge/*"], clone),
                      (["checkout", "--quiet", instance["base_commit"]], clone)):
        subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)

    spec = make_test_spec(instance | {"image": f"bugforge/cartcalc:{instance['version']}",
                                      "eval_script": eval_script(instance, clone),
                                      "log_parser": "parse_log_pytest", "eval_type": "pass_and_fail"})
    assert isinstance(spec, TestSpec) and spec.repo == "cartcalc" and spec.version == instance["version"]
    # the ids as swebench's pytest parser keys them (cut at the first space: the sample has such ids)
    assert spec.FAIL_TO_PASS == bug.fail_to_pass and spec.FAIL_TO_PASS
    assert spec.PASS_TO_PASS == list(dict.fromkeys(t.split()[0] for t in bug.pass_to_pass))
    assert len(spec.PASS_TO_PASS) < len(bug.pass_to_pass)

    def grade(model_patch: str, name: str) -> dict:
        log = tmp_path / f"{name}.log"
        run_eval(spec, clone, log, model_patch)
        prediction = {"instance_id": spec.instance_id, "model_name_or_path": name, "model_patch": model_patch}
        return get_eval_report(spec, prediction, str(log), include_tests_status=True)[spec.instance_id]

    # no fix: applied, not resolved; every FAIL_TO_PASS test fails, every PASS_TO_PASS test passes
    empty = grade("", "nothing")
    assert empty["patch_successfully_applied"] and not empty["resolved"]
    status = empty["tests_status"]
    assert sorted(status["FAIL_TO_PASS"]["failure"]) == sorted(spec.FAIL_TO_PASS)
    assert not status["FAIL_TO_PASS"]["success"] and not status["PASS_TO_PASS"]["failure"]
    # the gold patch: resolved, by swebench's own pytest log parser and grader
    gold = grade(instance["patch"], "gold")
    assert gold["resolved"], gold
    assert sorted(gold["tests_status"]["FAIL_TO_PASS"]["success"]) == sorted(spec.FAIL_TO_PASS)
    assert sorted(gold["tests_status"]["PASS_TO_PASS"]["success"]) == sorted(spec.PASS_TO_PASS)
