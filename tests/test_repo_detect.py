"""Inferring a repository's test environment from its files (never running them)."""
import textwrap

import pytest

from episodes.engine.repo_detect import BUILD_EXT, detect


def tree(root, files):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def test_pyproject_extras_and_self_reference(tmp_path):
    found = detect(tree(tmp_path, {"pyproject.toml": """\
        [project]
        name = "My_Lib"
        dependencies = ["attrs>=23"]
        requires-python = ">=3.10"
        [project.optional-dependencies]
        speed = ["ujson"]
        test = ["pytest>=8", "my-lib[speed]", "hypothesis"]
        [tool.pytest.ini_options]
        testpaths = ["tests", "missing"]
        """, "tests/test_x.py": ""}))
    assert found.pip_packages == ["attrs>=23", "pytest>=8", "ujson", "hypothesis"]  # the project itself never
    assert found.test_paths == ["tests"] and found.requires_python == ">=3.10"
    assert any("test extra 'test'" in r for r in found.reasons) and found.install_command == ""


def test_requirements_includes_and_editable_self(tmp_path):
    found = detect(tree(tmp_path, {
        "requirements-dev.txt": "-r requirements/base.txt\n-e .\nrequests==2.32.3  # http\n--hash=sha256:x\n",
        "requirements/base.txt": "six\n", "test_top.py": "",
    }))
    assert found.pip_packages == ["pytest", "six", "requests==2.32.3"]
    assert found.test_paths == ["test_top.py"]


def test_setup_py_literals_dynamic_deps_and_c_extension(tmp_path):
    found = detect(tree(tmp_path, {"setup.py": """\
        from setuptools import Extension, setup
        REQS = ["numpy>=1.26"]
        setup(name="fast", install_requires=REQS, extras_require=load_extras(),
              ext_modules=[Extension("fast._c", ["fast/_c.c"])])
        """, "tests/t.py": ""}))
    assert found.install_command == BUILD_EXT and "numpy>=1.26" in found.pip_packages
    assert any("computes extras_require at run time" in w for w in found.warnings)


def test_setup_cfg_and_tox(tmp_path):
    found = detect(tree(tmp_path, {
        "setup.cfg": "[metadata]\nname = cfgpkg\n[options]\ninstall_requires =\n    click\n[options.extras_require]\n"
                     "testing =\n    pytest-mock\n[tool:pytest]\naddopts = -q\n",
        "tox.ini": "[testenv]\ndeps =\n    freezegun\n    -rrequirements.txt\n",
        "test/test_a.py": "",
    }))
    assert found.pip_packages == ["pytest", "click", "pytest-mock", "freezegun"]
    assert found.test_paths == ["test"] and any("setup.cfg [tool:pytest]" in r for r in found.reasons)


def test_nothing_found_gives_defaults_and_a_warning(tmp_path):
    found = detect(tmp_path)
    assert (found.test_command, found.pip_packages, found.install_command) == ("python -m pytest", ["pytest"], "")
    assert found.warnings and "no tests/" in found.warnings[0]


@pytest.mark.parametrize("broken", ["[project\nname=", "not = [valid"])
def test_a_broken_pyproject_is_not_fatal(tmp_path, broken):
    assert detect(tree(tmp_path, {"pyproject.toml": broken})).pip_packages == ["pytest"]
