"""Inferring a project's test environment from its files (never running them)."""
import os
import textwrap

import pytest

from episodes.engine.repos.detect import BACKEND_INSTALL, BUILD_EXT, detect


def tree(root, files):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def test_pyproject_test_extra_and_pytest_config(tmp_path):
    found = detect(tree(tmp_path, {"pyproject.toml": """\
        [project]
        name = "My_Lib"
        dependencies = ["attrs>=23", "numpy; python_version >= '3.10'"]
        requires-python = ">=3.10"
        [project.optional-dependencies]
        dev = ["black"]
        test = ["pytest>=8", "hypothesis"]
        [tool.pytest.ini_options]
        testpaths = ["tests", "missing"]
        """, "tests/test_x.py": ""}))
    assert found.pip_packages == ["attrs>=23", "numpy; python_version >= '3.10'", "pytest>=8", "hypothesis"]
    assert found.test_command == "python -m pytest" and found.install_command == ""
    assert found.test_paths == ["tests"] and found.requires_python == ">=3.10" and found.python == "python3"
    assert "test extra 'test' of pyproject.toml: pytest>=8, hypothesis" in found.reasons
    assert "pytest config found in pyproject.toml [tool.pytest.ini_options] (testpaths: tests, missing)" \
        in found.reasons
    assert found.warnings == []
    assert found.to_dict()["pip_packages"] == found.pip_packages


def test_self_reference_expands_into_the_extra_and_the_project_is_never_installed(tmp_path):
    found = detect(tree(tmp_path, {"pyproject.toml": """\
        [project]
        name = "my-lib"
        dependencies = ["attrs"]
        [project.optional-dependencies]
        speed = ["ujson", "My.Lib[extra2]"]
        extra2 = ["orjson"]
        test = ["pytest", "my_lib[speed]", "attrs>=23"]
        """, "requirements-dev.txt": "-e .[test]\nMy-Lib\n", "tests/test_x.py": ""}))
    # attrs keeps its place, the more specific spec wins; the project and its self-references are gone
    assert found.pip_packages == ["attrs>=23", "pytest", "ujson", "orjson"]
    assert "my_lib[speed] is the project itself: its extra 'speed' is used instead" in found.reasons


def test_dependency_groups_with_include_group(tmp_path):
    found = detect(tree(tmp_path, {"pyproject.toml": """\
        [project]
        name = "grouped"
        [dependency-groups]
        base = ["coverage"]
        tests = ["pytest-mock", {include-group = "base"}]
        lint = ["ruff"]
        """}))
    assert found.pip_packages == ["pytest", "pytest-mock", "coverage"]
    assert "dependency group 'tests' of pyproject.toml: pytest-mock, coverage" in found.reasons


def test_setup_cfg_project(tmp_path):
    found = detect(tree(tmp_path, {
        "setup.cfg": "[metadata]\nname = cfgpkg\n[options]\npython_requires = >=3.8\ninstall_requires =\n    click>=8\n"
                     "    cfgpkg\n[options.extras_require]\ntesting =\n    pytest-mock\n    pytest\n"
                     "[tool:pytest]\ntestpaths = test\n",
        "test/test_a.py": "",
    }))
    assert found.pip_packages == ["click>=8", "pytest-mock", "pytest"]
    assert found.requires_python == ">=3.8" and found.test_paths == ["test"]
    assert "pytest config found in setup.cfg [tool:pytest] (testpaths: test)" in found.reasons
    assert "install_requires of setup.cfg [options]: click>=8, cfgpkg" in found.reasons


def test_setup_py_literal_lists_through_module_level_names(tmp_path):
    found = detect(tree(tmp_path, {"setup.py": """\
        from setuptools import setup
        BASE = ["requests>=2"]
        EXTRAS = {"test": ["pytest>=7", "responses"], "docs": ["sphinx"]}
        setup(name="web", install_requires=BASE + ["idna"], extras_require=EXTRAS,
              tests_require=["mock"], python_requires=">=3.9")
        """, "tests/t.py": ""}))
    assert found.pip_packages == ["requests>=2", "idna", "mock", "pytest>=7", "responses"]
    assert found.requires_python == ">=3.9" and found.install_command == "" and found.warnings == []
    assert "install_requires of setup.py: requests>=2, idna" in found.reasons


def test_setup_py_dynamic_dependencies_are_a_warning(tmp_path):
    found = detect(tree(tmp_path, {"setup.py": """\
        from setuptools import setup
        setup(name="dyn", install_requires=open("reqs.in").read().split(), extras_require=load())
        """, "tests/t.py": ""}))
    assert found.pip_packages == ["pytest"]
    assert found.warnings == ["setup.py computes install_requires dynamically: check the packages",
                              "setup.py computes extras_require dynamically: check the packages"]


def test_c_extension_gets_a_build_step_and_its_build_requirements(tmp_path):
    found = detect(tree(tmp_path, {"setup.py": """\
        from setuptools import Extension, setup
        setup(name="fast", install_requires=["numpy>=1.26"],
              ext_modules=[Extension("fast._c", ["fast/_c.c"])])
        """, "pyproject.toml": '[build-system]\nrequires = ["setuptools>=61", "cython"]\n', "tests/t.py": ""}))
    assert found.install_command == BUILD_EXT == "python setup.py build_ext --inplace"
    assert found.pip_packages == ["pytest", "numpy>=1.26", "setuptools>=61", "cython"]
    assert "setup.py has ext_modules: built once with `python setup.py build_ext --inplace`" in found.reasons
    assert "build requirements of the install step: setuptools>=61, cython" in found.reasons


def test_cythonize_needs_cython_to_build(tmp_path):
    found = detect(tree(tmp_path, {"setup.py": """\
        from Cython.Build import cythonize
        from setuptools import setup
        setup(name="cy", ext_modules=cythonize("cy/*.pyx"))
        """, "tests/t.py": ""}))
    assert found.install_command == BUILD_EXT and found.pip_packages == ["pytest", "Cython"]


def test_compiled_build_backend_and_makefile(tmp_path):
    meson = detect(tree(tmp_path / "m", {"pyproject.toml": """\
        [build-system]
        build-backend = "mesonpy"
        requires = ["meson-python", "numpy"]
        """}))
    assert meson.install_command == BACKEND_INSTALL
    assert meson.pip_packages == ["pytest", "meson-python", "numpy"]
    assert meson.warnings[0] == "mesonpy builds are installed, not built in place: check the install command"
    make = detect(tree(tmp_path / "k", {"Makefile": "docs:\n\tsphinx-build docs out\ninplace:\n\t$(CC) -shared x.c\n",
                                        "tests/t.py": ""}))
    assert make.install_command == "make inplace" and make.pip_packages == ["pytest", "setuptools"]
    pure = detect(tree(tmp_path / "p", {"Makefile": "build:\n\tpython -m build\n", "tests/t.py": ""}))
    assert pure.install_command == ""


def test_requirements_dev_with_include_editable_self_and_hashes(tmp_path):
    found = detect(tree(tmp_path, {
        "setup.cfg": "[metadata]\nname = proj\n",
        "requirements-dev.txt": "-r requirements/base.txt\n-e .\nrequests==2.32.3 \\\n    --hash=sha256:abc  # http\n"
                                "--index-url https://example.invalid/simple\nproj\n"
                                "tomli; python_version < '3.11'\n-c constraints.txt\n",
        "requirements/base.txt": "# base\nsix\n-r ../requirements-dev.txt\n",
        "requirements-docs.txt": "sphinx\n",
        "test_top.py": "",
    }))
    assert found.pip_packages == ["pytest", "six", "requests==2.32.3", "tomli; python_version < '3.11'"]
    assert found.test_paths == ["test_top.py"]
    assert "requirements-dev.txt: six, requests==2.32.3, tomli; python_version < '3.11'" in found.reasons
    assert "requirements-docs.txt not read: documentation requirements are not needed by tests" in found.reasons


def test_requirements_includes_never_leave_the_checkout(tmp_path):
    (tmp_path / "outside.txt").write_text("evil-package\n")
    repo = tree(tmp_path / "repo", {"requirements-test.txt": "-r ../outside.txt\nflaky\n", "tests/t.py": ""})
    os.symlink(tmp_path / "outside.txt", repo / "requirements.txt")
    assert detect(repo).pip_packages == ["pytest", "flaky"]


def test_tox_deps_extras_and_pytest_args(tmp_path):
    found = detect(tree(tmp_path, {
        "setup.cfg": "[metadata]\nname = toxed\n[options.extras_require]\nspeed =\n    cffi\n",
        "tox.ini": """\
            [tox]
            envlist = py311
            [testenv]
            deps =
                freezegun
                py311: mock>=5
                -rrequirements-ci.txt
            extras = speed
            commands =
                python -m pip list
                pytest -p no:xdist {posargs} tests/unit
            [pytest]
            addopts = -q
            """,
        "requirements-ci.txt": "pyyaml\n",
        "tests/unit/test_a.py": "",
    }))
    assert found.pip_packages == ["pytest", "pyyaml", "freezegun", "mock>=5", "cffi"]
    assert found.test_command == "python -m pytest tests/unit"
    assert "tox.ini [testenv] runs pytest on tests/unit" in found.reasons
    assert "pytest config found in tox.ini [pytest]" in found.reasons
    assert found.test_paths == ["tests/unit"]


def test_noxfile_installs_of_the_test_session(tmp_path):
    found = detect(tree(tmp_path, {"noxfile.py": """\
        import nox
        DEPS = ["pytest", "pytest-timeout"]
        @nox.session
        def lint(session):
            session.install("ruff")
        @nox.session
        def tests(session):
            session.install("-e", ".", *DEPS)
            session.install("-r", "ci.txt")
            session.run("pytest")
        """, "ci.txt": "attrs\n", "tests/t.py": ""}))
    assert found.pip_packages == ["pytest", "pytest-timeout", "attrs"]
    assert "noxfile.py session tests installs: pytest, pytest-timeout, attrs" in found.reasons


def test_poetry_project(tmp_path):
    found = detect(tree(tmp_path, {"pyproject.toml": """\
        [tool.poetry]
        name = "poet"
        [tool.poetry.dependencies]
        python = "^3.9"
        requests = "^2.31.0"
        legacy = "^0.2.3"
        pendulum = "~2.1"
        click = ">=8,<9"
        anything = "*"
        pinned = "1.4"
        rich = {version = "^13.1", extras = ["jupyter"]}
        optional-thing = {version = "^1", optional = true}
        fromgit = {git = "https://example.invalid/x.git"}
        odd = "^1.0 || ^2.0"
        [tool.poetry.group.dev.dependencies]
        black = "*"
        [tool.poetry.group.test.dependencies]
        pytest = "^8.0"
        """, "tests/t.py": ""}))
    assert found.pip_packages == ["requests>=2.31.0,<3", "legacy>=0.2.3,<0.3", "pendulum>=2.1,<2.2", "click>=8,<9",
                                  "anything", "pinned==1.4", "rich[jupyter]>=13.1,<14", "fromgit", "odd",
                                  "pytest>=8.0,<9"]
    assert found.requires_python == ">=3.9,<4"
    assert found.warnings == ["pyproject.toml [tool.poetry]: the versions of fromgit, odd could not be converted "
                              "(git/path/url or complex ranges): only the names are used"]


def test_requires_python_that_excludes_the_host(tmp_path):
    found = detect(tree(tmp_path, {"pyproject.toml": '[project]\nname = "new"\nrequires-python = ">=3.12"\n',
                                   "tests/t.py": ""}), host_python=(3, 11))
    assert found.python == "python3"
    assert found.warnings == ["requires-python '>=3.12' excludes the host's Python 3.11: "
                              "set python to an interpreter that fits"]
    assert detect(tmp_path, host_python=(3, 12)).warnings == []


def test_subdir_of_a_monorepo(tmp_path):
    tree(tmp_path, {"requirements.txt": "rootonly\n", "libs/core/pyproject.toml": '[project]\nname = "core"\n'
                    'dependencies = ["attrs"]\n', "libs/core/requirements-test.txt": "-r ../../requirements.txt\n",
                    "libs/core/tests/test_c.py": ""})
    found = detect(tmp_path, subdir="libs/core")
    assert found.pip_packages == ["pytest", "attrs", "rootonly"]  # includes may reach the rest of the checkout
    assert found.test_paths == ["tests"]
    with pytest.raises(ValueError, match="outside the checkout"):
        detect(tmp_path / "libs", subdir="../..")
    with pytest.raises(ValueError, match="is not a folder"):
        detect(tmp_path, subdir="libs/nope")


def test_nothing_found_gives_defaults_and_a_warning(tmp_path):
    found = detect(tmp_path)
    assert (found.test_command, found.pip_packages, found.install_command) == ("python -m pytest", ["pytest"], "")
    assert found.test_paths == [] and found.reasons == []
    assert found.warnings == ["no test configuration or tests/ folder found: check the test command"]


@pytest.mark.parametrize("name,broken", [("pyproject.toml", "[project\nname="), ("setup.py", "setup(name=")])
def test_a_broken_file_is_a_warning_not_an_error(tmp_path, name, broken):
    found = detect(tree(tmp_path, {name: broken, "tests/t.py": ""}))
    assert found.pip_packages == ["pytest"] and found.warnings[0].startswith(f"{name} does not parse")


def test_unexpected_shapes_are_a_warning(tmp_path):
    found = detect(tree(tmp_path, {"pyproject.toml": '[project]\nname = "odd"\ndependencies = "attrs"\n'
                                                     'optional-dependencies = 3\n', "tests/t.py": ""}))
    assert found.pip_packages == ["pytest", "attrs"]
    assert found.warnings == ["reading the pyproject information failed (AttributeError: 'int' object has no "
                              "attribute 'items'): partly ignored, check the settings"]
