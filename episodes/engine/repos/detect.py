"""What a Python project's tests need, inferred from its files (plain Python, no Django).

``detect(checkout)`` reads pyproject.toml (PEP 621, PEP 735 groups, Poetry), setup.cfg,
setup.py (parsed with ``ast``), requirements files (``-r`` includes followed inside the
checkout), tox.ini, noxfile.py (parsed) and the pytest configuration, and returns the test
command, the packages (the project's dependencies and test extras, never the project itself),
a build step when there is compiled code, and one sentence per inference saying where it came
from. What cannot be told statically is a warning. It only reads files: it never runs, imports
or installs repository code, and it reads nothing outside the checkout (symlinks included).
"""
from __future__ import annotations

import ast
import configparser
import os
import re
import shlex
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

TEST_EXTRAS = ("test", "tests", "testing", "dev")  # the first one a project has is used
IGNORED: frozenset[str] = frozenset()  # normalized names never installed for tests
BUILD_EXT = "python setup.py build_ext --inplace"
BACKEND_INSTALL = "python -m pip install --no-build-isolation --no-deps ."
COMPILED_BACKENDS = ("scikit_build_core", "mesonpy", "maturin")
MAX_FILE = 2_000_000
PYTEST_VALUE_OPTIONS = {"-k", "-m", "-p", "-c", "-n", "-o", "--ignore", "--deselect", "--rootdir", "--cov",
                        "--basetemp", "--confcutdir", "--junitxml", "--numprocesses"}


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
    """PEP 503: lowercase, runs of -_. are one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    egg = re.search(r"#egg=([\w.-]+)", spec)
    if egg:
        return normalize(egg.group(1))
    if re.match(r"[\w+]+://", spec):
        return spec.strip()
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    return normalize(match.group(1)) if match else ""


def detect(checkout: Path, subdir: str = "", host_python=(3, 11)) -> Detected:
    checkout = Path(checkout).resolve()
    root = (checkout / subdir).resolve()
    if not root.is_relative_to(checkout):
        raise ValueError(f"subdir {subdir!r} is outside the checkout")
    if not root.is_dir():
        raise ValueError(f"subdir {subdir!r} is not a folder of the checkout" if subdir
                         else f"{checkout} is not a folder")
    scan = _Scan(checkout, root)
    for step in (scan.pyproject, scan.setup_cfg, scan.setup_py, scan.test_extras, scan.requirement_files,
                 scan.tox, scan.nox, scan.pytest_config, scan.makefile):
        try:
            step()
        except (TypeError, AttributeError, KeyError, ValueError, IndexError) as exc:  # well-formed, unexpected shape
            scan.found.warnings.append(f"reading the {step.__name__} information failed ({type(exc).__name__}: {exc}): "
                                       "partly ignored, check the settings")
    return scan.finish(host_python)


class _Scan:
    def __init__(self, checkout: Path, root: Path):
        self.checkout, self.root, self.found = checkout, root, Detected()
        self.project, self.deps, self.extras, self.extra_source = "", [], {}, {}
        self.build_requires, self.seen, self.tox_paths, self.configured = [], set(), [], False

    def read(self, path: Path | str) -> str:
        try:
            path = (self.root / path).resolve()
            if not path.is_relative_to(self.checkout) or not path.is_file():
                return ""
            if path.stat().st_size > MAX_FILE:
                self.found.warnings.append(f"{self.rel(path)} is too large to read: skipped")
                return ""
            return path.read_text(encoding="utf-8", errors="replace")
        except (OSError, RuntimeError):  # RuntimeError: a symlink loop
            return ""

    def rel(self, path: Path) -> str:
        return os.path.relpath(path, self.root)

    def add(self, specs: list[str], reason: str) -> None:
        specs = _strings(specs)
        if specs:
            self.deps += specs
            self.found.reasons.append(f"{reason}: {', '.join(specs)}")

    def build(self, command: str, reason: str) -> None:
        if not self.found.install_command:
            self.found.install_command = command
            self.found.reasons.append(f"{reason}: built once with `{command}`")

    def set_python(self, spec: str) -> None:
        self.found.requires_python = self.found.requires_python or spec.strip()

    def pyproject(self) -> None:
        text = self.read("pyproject.toml")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            self.found.warnings.append(f"pyproject.toml does not parse ({exc}): ignored")
            return
        meta, tool = data.get("project", {}), data.get("tool", {})
        self.project = meta.get("name", "") or tool.get("poetry", {}).get("name", "")
        self.set_python(meta.get("requires-python", ""))
        self.add(meta.get("dependencies", []), "dependencies of pyproject.toml [project]")
        for extra, items in meta.get("optional-dependencies", {}).items():
            self.extra_of(extra, items, "pyproject.toml")
        if "dependencies" in meta.get("dynamic", []):
            files = tool.get("setuptools", {}).get("dynamic", {}).get("dependencies", {}).get("file", [])
            for name in _strings(files):
                self.add(self.requirements(self.root / name), f"dynamic dependencies of pyproject.toml, {name}")
            if not files:
                self.found.warnings.append("pyproject.toml declares its dependencies dynamic: check the packages")
        groups = {normalize(k): v for k, v in data.get("dependency-groups", {}).items()}
        group = next((g for g in TEST_EXTRAS if g in groups), "")
        if group:
            self.add(self.group(groups, group, set()), f"dependency group {group!r} of pyproject.toml")
        self.poetry(tool.get("poetry", {}))
        backend = data.get("build-system", {}).get("build-backend", "")
        self.build_requires += data.get("build-system", {}).get("requires", [])
        if any(b in backend for b in COMPILED_BACKENDS):
            self.build(BACKEND_INSTALL, f"the build backend {backend} of pyproject.toml compiles code")
            self.found.warnings.append(f"{backend} builds are installed, not built in place: check the install command")
        elif tool.get("setuptools", {}).get("ext-modules"):
            self.build(BUILD_EXT, "pyproject.toml [tool.setuptools] declares ext-modules")

    def group(self, groups: dict, name: str, seen: set) -> list[str]:
        """A PEP 735 dependency group, its {include-group = ...} entries expanded."""
        seen.add(name)
        out = []
        for item in groups.get(name, []):
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict) and normalize(item.get("include-group", "")) not in seen:
                out += self.group(groups, normalize(item["include-group"]), seen)
        return out

    def poetry(self, poetry: dict) -> None:
        main = dict(poetry.get("dependencies", {}))
        if "python" in main:
            self.set_python(_poetry_version(str(main.pop("python"))) or "")
        groups = {normalize(g): v.get("dependencies", {}) for g, v in poetry.get("group", {}).items()}
        groups.setdefault("dev", poetry.get("dev-dependencies", {}))
        chosen = next((g for g in TEST_EXTRAS if groups.get(g)), "")
        unclear = []
        for table, where in ((main, "[tool.poetry.dependencies]"),
                             (groups.get(chosen, {}), f"[tool.poetry.group.{chosen}.dependencies]")):
            specs = []
            for name, value in table.items():
                spec, clear = _poetry_requirement(name, value)
                specs += [spec] if spec else []
                unclear += [] if clear else [name]
            self.add(specs, f"pyproject.toml {where} (caret/tilde versions converted)")
        if unclear:
            self.found.warnings.append(f"pyproject.toml [tool.poetry]: the versions of {', '.join(unclear)} could not "
                                       "be converted (git/path/url or complex ranges): only the names are used")

    def extra_of(self, extra: str, items: list[str], source: str) -> None:
        self.extras.setdefault(normalize(extra), _strings(items))
        self.extra_source.setdefault(normalize(extra), source)

    def setup_cfg(self) -> None:
        text = self.read("setup.cfg")
        cfg = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            cfg.read_string(text)
        except configparser.Error as exc:
            self.found.warnings.append(f"setup.cfg does not parse ({exc}): ignored")
            return
        self.project = self.project or cfg.get("metadata", "name", fallback="")
        self.set_python(cfg.get("options", "python_requires", fallback=""))
        for key in ("install_requires", "tests_require"):
            self.add(_lines(cfg.get("options", key, fallback="")), f"{key} of setup.cfg [options]")
        for extra, value in cfg.items("options.extras_require") if cfg.has_section("options.extras_require") else []:
            self.extra_of(extra, _lines(value), "setup.cfg")

    def setup_py(self) -> None:
        text = self.read("setup.py")
        if not text:
            return
        try:
            tree = ast.parse(text)
        except SyntaxError as exc:
            self.found.warnings.append(f"setup.py does not parse ({exc}): ignored")
            return
        names = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                 if isinstance(t, ast.Name)}
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            func = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")
            if func in ("Extension", "cythonize", "Pybind11Extension"):
                self.build(BUILD_EXT, f"setup.py builds a C extension ({func}(...))")
                self.build_requires += ["Cython"] if func == "cythonize" else []
            if func == "setup":
                self.setup_call(call, names)

    def setup_call(self, call: ast.Call, names: dict) -> None:
        keywords = [(kw.arg, kw.value) for kw in call.keywords if kw.arg]
        for kw in (kw for kw in call.keywords if kw.arg is None):
            mapping = names.get(kw.value.id) if isinstance(kw.value, ast.Name) else kw.value
            if isinstance(mapping, ast.Dict) and all(isinstance(k, ast.Constant) for k in mapping.keys):
                keywords += [(k.value, v) for k, v in zip(mapping.keys, mapping.values)]
            else:
                self.found.warnings.append("setup.py passes setup() arguments computed at run time: check the packages")
        for arg, node in keywords:
            if arg == "ext_modules":
                self.build(BUILD_EXT, "setup.py has ext_modules")
                continue
            try:
                value = _literal(node, names)
            except ValueError:
                if arg in ("install_requires", "tests_require", "extras_require", "python_requires"):
                    self.found.warnings.append(f"setup.py computes {arg} dynamically: check the packages")
                continue
            if arg == "name":
                self.project = self.project or str(value)
            elif arg in ("install_requires", "tests_require"):
                self.add(_strings(value), f"{arg} of setup.py")
            elif arg == "extras_require" and isinstance(value, dict):
                for extra, items in value.items():
                    self.extra_of(extra, _strings(items), "setup.py")
            elif arg == "python_requires":
                self.set_python(str(value))
            elif arg == "setup_requires":
                self.build_requires += _strings(value)

    def test_extras(self) -> None:
        extra = next((e for e in TEST_EXTRAS if self.extras.get(e)), "")
        if extra:
            self.add(self.extras[extra], f"test extra {extra!r} of {self.extra_source[extra]}")

    def requirement_files(self) -> None:
        names = ([p for p in self.root.glob("*requirements*.txt")] + list(self.root.glob("requirements/*.txt")))
        names = sorted({self.rel(p) for p in names}, key=lambda n: ("test" not in n, "dev" not in n, n))
        for name in names:
            if "doc" in name.lower():
                self.found.reasons.append(f"{name} not read: documentation requirements are not needed by tests")
                continue
            self.add(self.requirements(self.root / name), name)

    def requirements(self, path: Path) -> list[str]:
        try:
            path = path.resolve()
        except (OSError, RuntimeError):
            return []
        if path in self.seen:
            return []
        self.seen.add(path)
        out = []
        for line in re.sub(r"\\\r?\n", " ", self.read(path)).splitlines():
            out += self.requirement_line(line, path.parent)
        return out

    def requirement_line(self, line: str, base: Path) -> list[str]:
        """The requirement strings one line of a requirements file (or tox deps, nox install) stands for."""
        line = re.sub(r"(^|\s)#.*", "", line).strip()
        include = re.match(r"(-r|--requirement)[=\s]*(\S+)", line)
        if include:
            return self.requirements(base / include.group(2).replace("{toxinidir}", str(self.root)))
        editable = re.match(r"(-e|--editable)[=\s]*(\S+)", line)
        line = editable.group(2) if editable else re.split(r"\s+--", line)[0]
        if not line or line.startswith("-"):
            return []  # -c constraints, --index-url, ...: options, not packages
        local = re.fullmatch(r"(?:file:)?([./][^\[\s;]*)(\[[^\]]*\])?", line)
        if local:
            if (base / local.group(1)).resolve() == self.root:
                return ["." + local.group(2)] if local.group(2) else []  # the project itself (with extras)
            self.found.warnings.append(f"skipped the local path {line!r}: install it yourself if the tests need it")
            return []
        if self.project and requirement_name(line) == normalize(self.project) and "[" not in line:
            return []  # the project itself, by name
        return [line]

    def tox(self) -> None:
        cfg = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            cfg.read_string(self.read("tox.ini"))
        except configparser.Error as exc:
            self.found.warnings.append(f"tox.ini does not parse ({exc}): ignored")
            return
        if not cfg.has_section("testenv"):
            return
        deps = []
        for line in _lines(cfg.get("testenv", "deps", fallback="")):
            deps += self.requirement_line(re.sub(r"^[\w{},!-]+:\s+", "", line), self.root)
        deps += [f".[{e}]" for e in re.split(r"[\s,]+", cfg.get("testenv", "extras", fallback="")) if e]
        self.add(deps, "tox.ini [testenv] deps/extras")
        for line in _lines(cfg.get("testenv", "commands", fallback="")):
            try:
                words = shlex.split(line)
            except ValueError:
                continue
            at = next((i for i, w in enumerate(words) if os.path.basename(w) in ("pytest", "py.test")), None)
            if at is None:
                continue
            args = words[at + 1:]
            self.tox_paths = [a for i, a in enumerate(args) if not a.startswith("-") and "{" not in a
                              and (i == 0 or args[i - 1] not in PYTEST_VALUE_OPTIONS) and (self.root / a).exists()]
            self.found.reasons.append("tox.ini [testenv] runs pytest" +
                                      (f" on {', '.join(self.tox_paths)}" if self.tox_paths else ""))
            break

    def nox(self) -> None:
        text = self.read("noxfile.py")
        try:
            tree = ast.parse(text)
        except SyntaxError:
            self.found.warnings.append("noxfile.py does not parse: ignored")
            return
        names = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                 if isinstance(t, ast.Name)}
        sessions = {f.name: [c for c in ast.walk(f) if isinstance(c, ast.Call)
                             and getattr(c.func, "attr", "") == "install"]
                    for f in tree.body if isinstance(f, ast.FunctionDef)}
        tests = {name: calls for name, calls in sessions.items() if "test" in name and calls}
        for name, calls in (tests or sessions).items():
            words = []
            for call in calls:
                for arg in call.args:
                    try:
                        value = _literal(arg.value if isinstance(arg, ast.Starred) else arg, names)
                        words += _strings(value)
                    except ValueError:
                        self.found.warnings.append(f"noxfile.py session {name} installs computed packages: check them")
            specs = []
            for i, word in enumerate(words):
                if words[i - 1:i] in (["-r"], ["-c"]):
                    specs += self.requirements(self.root / word) if words[i - 1] == "-r" else []
                elif word not in ("-r", "-c"):
                    specs += self.requirement_line(word, self.root)
            self.add(specs, f"noxfile.py session {name} installs")

    def pytest_config(self) -> None:
        for name, section in (("pytest.ini", "pytest"), (".pytest.ini", "pytest"), ("pytest.toml", "pytest"),
                              (".pytest.toml", "pytest"), ("pyproject.toml", "tool.pytest.ini_options"),
                              ("pyproject.toml", "tool.pytest"), ("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
            text = self.read(name)
            if not text:
                continue
            try:
                if name.endswith(".toml"):
                    table = tomllib.loads(text)
                    for key in section.split("."):
                        table = table.get(key, {}) if isinstance(table, dict) else {}
                    if not table and name == "pyproject.toml":
                        continue
                    paths = table.get("testpaths", [])
                else:
                    cfg = configparser.ConfigParser(interpolation=None, strict=False)
                    cfg.read_string(text)
                    if not cfg.has_section(section) and name not in ("pytest.ini", ".pytest.ini"):
                        continue
                    paths = cfg.get(section, "testpaths", fallback="")
            except (tomllib.TOMLDecodeError, configparser.Error):
                continue
            paths = paths.split() if isinstance(paths, str) else list(paths)
            self.configured = True
            self.found.test_paths = [p for p in paths if (self.root / p).exists()]
            self.found.reasons.append(f"pytest config found in {name} [{section}]"
                                      + (f" (testpaths: {', '.join(paths)})" if paths else ""))
            return

    def makefile(self) -> None:
        text = self.read("Makefile")
        for target, recipe in re.findall(r"^(build|inplace|build_ext|build-ext)\s*:.*\n((?:\t.*\n?)*)", text, re.M):
            if re.search(r"build_ext|\$\(CC\)|\bgcc\b|\bcc\b|cythonize|maturin|meson|cmake", recipe):
                self.build(f"make {target}", f"the Makefile target {target!r} compiles code")
                return

    def finish(self, host_python) -> Detected:
        found = self.found
        if found.install_command:
            build = self.build_requires or ["setuptools"]
            self.add(build, "build requirements of the install step")
        specs = [s for s in _dedupe(self.expand(self.deps, set())) if requirement_name(s) not in IGNORED]
        found.pip_packages = specs if any(requirement_name(s) == "pytest" for s in specs) else ["pytest", *specs]
        if found.test_command == "python -m pytest" and self.tox_paths:
            found.test_command += " " + " ".join(shlex.quote(p) for p in self.tox_paths)
        found.test_paths = (found.test_paths or self.tox_paths
                            or [p for p in ("tests", "test") if (self.root / p).is_dir()]
                            or sorted(p.name for p in self.root.glob("test_*.py")))
        if not found.test_paths and not self.configured:
            found.warnings.append("no test configuration or tests/ folder found: check the test command")
        if found.requires_python:
            _check_python(found, host_python)
        return found

    def expand(self, specs: list[str], seen: set) -> list[str]:
        """Drop the project itself; ``project[test]`` (or ``.[test]``) becomes that extra's requirements."""
        out = []
        for spec in specs:
            if not (spec.startswith(".") or (self.project and requirement_name(spec) == normalize(self.project))):
                out.append(spec)
                continue
            wanted = re.search(r"\[([^\]]*)\]", spec)
            for extra in [normalize(e.strip()) for e in wanted.group(1).split(",") if e.strip()] if wanted else []:
                if extra not in self.extras:
                    self.found.warnings.append(f"{spec} asks for the extra {extra!r}, "
                                               "which the project does not declare")
                elif extra not in seen:
                    self.found.reasons.append(f"{spec} is the project itself: its extra {extra!r} is used instead")
                    out += self.expand(self.extras[extra], seen | {extra})
        return out


def _literal(node: ast.AST, names: dict, depth: int = 0):
    """A literal value, following module-level names and ``+`` of lists; ValueError when computed."""
    if depth > 10:
        raise ValueError("too deep")
    if isinstance(node, ast.Name) and node.id in names:
        return _literal(names[node.id], names, depth + 1)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return list(_literal(node.left, names, depth + 1)) + list(_literal(node.right, names, depth + 1))
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item, names, depth + 1) for item in node.elts]
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k, names, depth + 1): _literal(v, names, depth + 1) for k, v in zip(node.keys, node.values)}
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ValueError("computed") from exc


def _poetry_requirement(name: str, value) -> tuple[str, bool]:
    """A PEP 508 string for a Poetry dependency ("" when optional) and whether its version converted."""
    extras = ""
    if isinstance(value, dict):
        if value.get("optional"):
            return "", True
        extras = f"[{','.join(value['extras'])}]" if value.get("extras") else ""
        value = value.get("version")
    version = _poetry_version(value) if isinstance(value, str) else None
    return name + extras + (version or ""), version is not None


def _poetry_version(value: str) -> str | None:
    """'^1.2' -> '>=1.2,<2', '~1.2.3' -> '>=1.2.3,<1.3', '1.2' -> '==1.2'; None when not convertible."""
    out = []
    for part in [p.strip() for p in value.split(",") if p.strip() not in ("", "*")]:
        match = re.fullmatch(r"([\^~])\s*(\d+(?:\.\d+)*)", part)
        if match:
            nums = [int(n) for n in match.group(2).split(".")]
            if match.group(1) == "^":
                i = next((i for i, n in enumerate(nums) if n), len(nums) - 1)
                upper = nums[:i] + [nums[i] + 1]
            else:
                upper = [nums[0], nums[1] + 1] if len(nums) > 1 else [nums[0] + 1]
            out.append(f">={match.group(2)},<{'.'.join(map(str, upper))}")
        elif re.fullmatch(r"(==|!=|<=|>=|<|>|~=)\s*\d[\w.*+!-]*", part):
            out.append(part.replace(" ", ""))
        elif re.fullmatch(r"\d+(\.\d+)*(\.\*)?", part):
            out.append("==" + part)
        else:
            return None
    return ",".join(out)


def _check_python(found: Detected, host_python) -> None:
    try:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
    except ImportError:
        return
    host = ".".join(map(str, host_python))
    try:
        spec = SpecifierSet(found.requires_python)
    except InvalidSpecifier:
        found.warnings.append(f"requires-python {found.requires_python!r} is not a version specifier: ignored")
        return
    versions = [host] if len(host_python) > 2 else [host + ".0", host + ".99"]
    if not any(spec.contains(v, prereleases=True) for v in versions):
        found.warnings.append(f"requires-python {found.requires_python!r} excludes the host's Python {host}: "
                              "set python to an interpreter that fits")


def _dedupe(specs: list[str]) -> list[str]:
    """One requirement per normalized name, at its first place; a bare name gives way to a later spec."""
    out: dict[str, str] = {}
    for spec in (s.strip() for s in specs):
        name = requirement_name(spec)
        if name and (name not in out or (normalize(out[name]) == name and normalize(spec) != name)):
            out[name] = spec
    return list(out.values())


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(("#", ";"))]


def _strings(value) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]
