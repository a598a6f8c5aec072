"""What a repository's tests need, inferred from its files (plain Python, no Django). Only reads
files — pyproject.toml, setup.cfg, setup.py (parsed, never run), requirements files, tox.ini —
and never runs repository code. Every inference comes with a sentence saying where it came from;
what cannot be told statically is a warning."""
from __future__ import annotations

import ast
import configparser
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

TEST_EXTRAS = ("test", "tests", "testing", "dev")
REQUIREMENT_FILES = ("requirements-test.txt", "requirements-tests.txt", "test-requirements.txt", "requirements-dev.txt",
                     "dev-requirements.txt", "requirements/test.txt", "requirements/tests.txt", "requirements/dev.txt",
                     "requirements.txt")
BUILD_EXT = "python setup.py build_ext --inplace"


@dataclass
class Detected:
    test_command: str = "python -m pytest"
    pip_packages: list[str] = field(default_factory=list)
    install_command: str = ""
    python: str = "python3"
    requires_python: str = ""
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    test_paths: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    return normalize(match.group(1)) if match else ""


def detect(checkout: Path) -> Detected:
    found = Detected()
    project, deps, extras = "", [], {}
    pyproject = _toml(checkout / "pyproject.toml")
    if pyproject:
        meta = pyproject.get("project", {})
        project = meta.get("name", "")
        deps += meta.get("dependencies", [])
        extras.update(meta.get("optional-dependencies", {}))
        for group, items in pyproject.get("dependency-groups", {}).items():
            extras.setdefault(group, [i for i in items if isinstance(i, str)])
        found.requires_python = meta.get("requires-python", "")
        if deps:
            found.reasons.append(f"dependencies of pyproject.toml [project]: {', '.join(deps)}")
        if "pytest" in pyproject.get("tool", {}) and "ini_options" in pyproject["tool"]["pytest"]:
            paths = pyproject["tool"]["pytest"]["ini_options"].get("testpaths", [])
            found.reasons.append("pytest configuration in pyproject.toml [tool.pytest.ini_options]"
                                 + (f" (testpaths: {', '.join(paths)})" if paths else ""))
            found.test_paths += [p for p in paths if (checkout / p).exists()]
        backend = pyproject.get("build-system", {}).get("build-backend", "")
        if any(b in backend for b in ("scikit_build", "mesonpy", "maturin")):
            found.warnings.append(f"the build backend {backend} compiles code: set an install command that builds it in place")
    cfg = configparser.ConfigParser(interpolation=None)
    if (checkout / "setup.cfg").is_file():
        try:
            cfg.read(checkout / "setup.cfg")
        except configparser.Error as exc:
            found.warnings.append(f"setup.cfg does not parse: {exc}")
        project = project or cfg.get("metadata", "name", fallback="")
        cfg_deps = _lines(cfg.get("options", "install_requires", fallback=""))
        if cfg_deps:
            deps += cfg_deps
            found.reasons.append(f"install_requires of setup.cfg: {', '.join(cfg_deps)}")
        if cfg.has_section("options.extras_require"):
            for extra, text in cfg.items("options.extras_require"):
                extras.setdefault(extra, _lines(text))
        if cfg.has_section("tool:pytest"):
            found.reasons.append("pytest configuration in setup.cfg [tool:pytest]")
    setup_py = checkout / "setup.py"
    if setup_py.is_file():
        project = _read_setup_py(setup_py, found, deps, extras) or project
    for extra in TEST_EXTRAS:
        if extras.get(extra):
            deps += extras[extra]
            found.reasons.append(f"test extra {extra!r}: {', '.join(extras[extra])}")
            break
    for name in REQUIREMENT_FILES:
        reqs = _requirements(checkout, checkout / name, project, set())
        if reqs:
            deps += reqs
            found.reasons.append(f"{name}: {', '.join(reqs)}")
    tox = configparser.ConfigParser(interpolation=None)
    if (checkout / "tox.ini").is_file():
        try:
            tox.read(checkout / "tox.ini")
            tox_deps = [d for d in _lines(tox.get("testenv", "deps", fallback="")) if not d.startswith(("-", "{"))]
            if tox_deps:
                deps += tox_deps
                found.reasons.append(f"tox.ini [testenv] deps: {', '.join(tox_deps)}")
            if tox.has_section("pytest"):
                found.reasons.append("pytest configuration in tox.ini [pytest]")
        except configparser.Error as exc:
            found.warnings.append(f"tox.ini does not parse: {exc}")
    if (checkout / "pytest.ini").is_file():
        found.reasons.append("pytest configuration in pytest.ini")
    found.pip_packages = _dedupe(_expand(deps, project, extras))
    if not any(requirement_name(p) == "pytest" for p in found.pip_packages):
        found.pip_packages.insert(0, "pytest")
    if not found.test_paths:
        found.test_paths = [p for p in ("tests", "test") if (checkout / p).is_dir()] or \
            sorted(p.name for p in checkout.glob("test_*.py"))
    if not found.test_paths:
        found.warnings.append("no tests/ or test/ folder and no test_*.py at the top: check the test command")
    return found


def _read_setup_py(path: Path, found: Detected, deps: list, extras: dict) -> str:
    """Literal install_requires / extras_require / ext_modules of the setup() call."""
    try:
        tree = ast.parse(path.read_text())
    except (SyntaxError, ValueError) as exc:
        found.warnings.append(f"setup.py does not parse: {exc}")
        return ""
    names = {t.id: node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)}
    project = ""
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        func = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")
        if func == "Extension" and not found.install_command:
            found.install_command = BUILD_EXT
            found.reasons.append("setup.py builds a C extension (Extension(...)): it is built in place once, "
                                 f"with `{BUILD_EXT}`")
        if func != "setup":
            continue
        for kw in call.keywords:
            value = names.get(kw.value.id, kw.value) if isinstance(kw.value, ast.Name) else kw.value
            try:
                literal = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                if kw.arg in ("install_requires", "extras_require", "tests_require"):
                    found.warnings.append(f"setup.py computes {kw.arg} at run time: check the packages")
                continue
            if kw.arg == "name":
                project = literal
            elif kw.arg in ("install_requires", "tests_require") and literal:
                deps += list(literal)
                found.reasons.append(f"{kw.arg} of setup.py: {', '.join(literal)}")
            elif kw.arg == "extras_require":
                for extra, items in dict(literal).items():
                    extras.setdefault(extra, list(items))
            elif kw.arg == "python_requires":
                found.requires_python = literal
    return project


def _requirements(root: Path, path: Path, project: str, seen: set) -> list[str]:
    if path in seen or not path.is_file():
        return []
    seen.add(path)
    out = []
    for line in path.read_text().splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            out += _requirements(root, path.parent / line.split(None, 1)[1], project, seen)
        elif line.startswith("-") or line in (".", "./") or line.startswith(("file:", "../", "./")):
            continue  # options, editable installs and paths: the project itself or not ours to install
        elif project and requirement_name(line) == normalize(project):
            continue
        else:
            out.append(line)
    return out


def _expand(deps: list[str], project: str, extras: dict) -> list[str]:
    """Drop the project itself; a self-reference with extras (``pkg[test]``) becomes those extras' deps."""
    out = []
    for dep in deps:
        if project and requirement_name(dep) == normalize(project):
            wanted = re.search(r"\[([^\]]+)\]", dep)
            for extra in (wanted.group(1).split(",") if wanted else []):
                out += [d for d in extras.get(extra.strip(), []) if requirement_name(d) != normalize(project)]
        else:
            out.append(dep)
    return out


def _dedupe(deps: list[str]) -> list[str]:
    seen, out = set(), []
    for dep in deps:
        name = requirement_name(dep)
        if name and name not in seen:
            seen.add(name)
            out.append(dep.strip())
    return out


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def _toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text()) if path.is_file() else {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {}
