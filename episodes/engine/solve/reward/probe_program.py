"""The behaviour probe: runs INSIDE the sandbox (stdlib only; pytest only in ``capture``).

    python FOLDER/main.py reference FOLDER/spec.json  # clean code: record the tests' calls, replay twice
    python -c "$PROGRAM" run SPEC_JSON               # graded code: replay them; nothing added to the checkout

The spec: {"targets": ["pkg/mod.py::Class.method", ...], "tests": [...], "calls": "FOLDER/calls.pkl",
"out": "FOLDER/out.json", "scale": 3, "shift": 2}; for ``run`` the calls come inline
("calls_b64") and the outcomes go to stdout after a ``MARKER`` line, so the graded run's checkout
holds no file of the grader's for the code under test to notice. ``capture`` pickles each call's arguments as the
call starts (up to 40 per target). ``run`` replays every recorded call and variants of it in
which every number in the arguments, and in the objects they reach, is scaled or shifted
(inputs the visible tests never used), and writes each outcome: the result's ``repr``
(addresses removed) or the exception's type. ``reference`` writes both runs (``out`` holds [first, second]: where they disagree the clean
code is not deterministic and the input is not compared). ``run`` never imports pytest and runs outside
any test runner: code that behaves only while tested behaves as it would in real use here.
"""
import json
import pickle
import re
import sys
from decimal import Decimal
from fractions import Fraction

MAX_CALLS = 40
MAX_DEPTH = 6


def _resolve(target):
    path, qualname = target.split("::")
    module_name = path[:-3].replace("/", ".")
    if module_name.startswith("src."):
        module_name = module_name[4:]
    module = __import__(module_name, fromlist=["_"])
    owner, parts = module, qualname.split(".")
    for part in parts[:-1]:
        owner = getattr(owner, part)
    return owner, parts[-1]


def capture(spec):
    calls = []
    counts = {}
    for target in spec["targets"]:
        try:
            owner, name = _resolve(target)
        except Exception:  # noqa: BLE001 - a target that cannot be found is simply not probed
            continue
        raw = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
        if raw is None or isinstance(raw, (staticmethod, classmethod, property)) or not callable(raw):
            continue

        def wrapper(*args, __target=target, __original=raw, **kwargs):
            if counts.get(__target, 0) < MAX_CALLS:
                try:
                    calls.append((__target, pickle.dumps((args, kwargs))))
                    counts[__target] = counts.get(__target, 0) + 1
                except Exception:  # noqa: BLE001 - unpicklable arguments: not probed
                    pass
            return __original(*args, **kwargs)

        setattr(owner, name, wrapper)
    import pytest

    pytest.main(["-q", "-p", "no:cacheprovider", *spec["tests"]])
    with open(spec["calls"], "wb") as f:
        pickle.dump(calls, f)


def _transform(value, number, depth=0, memo=None):
    memo = {} if memo is None else memo
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        return value
    if isinstance(value, (int, float, Decimal, Fraction)):
        return number(value)
    if depth > MAX_DEPTH or id(value) in memo:
        return memo.get(id(value), value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_transform(v, number, depth + 1, memo) for v in value]
        return type(value)(items) if not hasattr(value, "_fields") else type(value)(*items)
    if isinstance(value, dict):
        return {k: _transform(v, number, depth + 1, memo) for k, v in value.items()}
    memo[id(value)] = value
    state = getattr(value, "__dict__", None)
    if isinstance(state, dict):
        for key, item in list(state.items()):
            try:
                object.__setattr__(value, key, _transform(item, number, depth + 1, memo))
            except Exception:  # noqa: BLE001 - read-only attributes stay as they are
                pass
    return value


def _outcome(fn, args, kwargs):
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the exception's type is the behaviour
        return "raises " + type(exc).__name__
    text = repr(result)
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)[:2000]


MARKER = "=== bugforge probe outcomes ==="


def run(spec):
    sys.stdout.write("\n" + MARKER + "\n" + json.dumps(outcomes(spec)) + "\n")


def reference(spec):
    capture(spec)
    with open(spec["out"], "w") as f:
        json.dump([outcomes(spec), outcomes(spec)], f)


def outcomes(spec):
    if "calls_b64" in spec:
        import base64

        calls = pickle.loads(base64.b64decode(spec["calls_b64"]))
    else:
        with open(spec["calls"], "rb") as f:
            calls = pickle.load(f)
    k, s = spec["scale"], spec["shift"]
    variants = {
        "as tested": lambda v: v,
        f"scaled x{k}": lambda v: v * k,
        f"shifted +{s}": lambda v: v + s,
        f"shifted -{s}": lambda v: v - s,
    }
    out = []
    for target, blob in calls:
        owner, name = _resolve(target)
        fn = getattr(owner, name)
        for label, number in variants.items():
            try:
                args, kwargs = pickle.loads(blob)
                args, kwargs = _transform(list(args), number), _transform(kwargs, number)
            except Exception:  # noqa: BLE001
                out.append([target, label, "unloadable"])
                continue
            if isinstance(owner, type) and args and isinstance(args[0], owner):
                outcome = _outcome(getattr(args[0], name), args[1:], kwargs)  # bound, as callers use it
            else:
                outcome = _outcome(fn, args, kwargs)
            out.append([target, label, outcome])
    return out


if __name__ == "__main__":
    sys.path.insert(0, ".")
    if sys.argv[1] == "run":
        run(json.loads(sys.argv[2]))
    else:
        with open(sys.argv[2]) as f:
            reference(json.load(f))
