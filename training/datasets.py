"""Build SFT and RL datasets from the database (a thin shell over training.engine.rows).

Filters (all optional, as a plain dict — what the UI form and `manage.py build_dataset` send):

    teacher            name or list of teacher names (SFT)
    repository         name or list of repository names
    min_reward         lowest episode reward kept (SFT; default 1.0: successful episodes only)
    allow_unknown_terms     keep episodes whose teacher's terms are not recorded (default: refuse)
    allow_disallowed_terms  keep episodes whose teacher's terms forbid training (default: refuse)
    max_length         longest trajectory kept, in characters of its messages (SFT)
    include_suspicious keep episodes whose graded change the reward's static screen flagged or
                       whose run was found tampered (SFT; default: refuse, counted as dropped)
    statuses           bug statuses kept (RL; default ["approved"])
    max_flake_rate     RL: keep bugs stable at < this flake rate — no run disagreed and the 95%
                       bound is below it, or staff marked the verifier stable (default
                       BUGFORGE_FLAKE_TARGET; the manifest records it)
    include_flaky      RL: keep bugs whose verifier disagreed with itself too
    split_by           "bug" (default) or "repository": no bug / repository on both sides
    heldout_fraction   share of bugs / repositories held out (default 0.2)
    heldout_bugs       explicit held-out bug ids (split by bug only), overriding the fraction
    seed               split seed (default 0)

A dataset row is immutable once built; the manifest records the filters, what each filter
dropped, any provenance warning, the counts, bugs and repositories per side and the hashes.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from django.conf import settings
from django.db import transaction

from training.engine import rows as engine
from training.models import Dataset

KNOWN_FILTERS = {
    "sft": {"teacher", "repository", "min_reward", "allow_unknown_terms", "allow_disallowed_terms", "max_length",
            "include_suspicious",
            "split_by", "heldout_fraction", "heldout_bugs", "seed"},
    "rl": {"repository", "statuses", "split_by", "heldout_fraction", "heldout_bugs", "seed", "include_flaky",
           "max_flake_rate", "solver", "band", "min_attempts"},
}


def datasets_dir() -> Path:
    return Path(settings.VAR_DIR) / "datasets"


def _names(value) -> list[str]:
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _bool(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def clean_filters(kind: str, filters: dict | None) -> dict:
    """Validated, normalized filters (ValueError with a clear message on a bad one)."""
    filters = {k: v for k, v in (filters or {}).items() if v not in (None, "", [])}
    unknown = set(filters) - KNOWN_FILTERS[kind]
    if unknown:
        raise ValueError(f"unknown filter(s) for an {kind.upper()} dataset: {', '.join(sorted(unknown))}")
    out: dict = {}
    for key in ("teacher", "repository", "statuses"):
        if key in filters:
            out[key] = _names(filters[key])
    for key in ("allow_unknown_terms", "allow_disallowed_terms", "include_flaky", "include_suspicious"):
        if key in filters:
            out[key] = _bool(filters[key])
    try:
        if "min_reward" in filters:
            out["min_reward"] = float(filters["min_reward"])
        if kind == "rl":
            out["max_flake_rate"] = float(filters.get("max_flake_rate", settings.BUGFORGE_FLAKE_TARGET))
            if not 0 < out["max_flake_rate"] <= 1:
                raise ValueError("max_flake_rate is a flake rate above 0 and at most 1")
        if "max_length" in filters:
            out["max_length"] = int(filters["max_length"])
            if out["max_length"] < 1:
                raise ValueError("max_length must be positive")
        out["heldout_fraction"] = float(filters.get("heldout_fraction", 0.2))
        out["seed"] = int(filters.get("seed", 0))
        if "heldout_bugs" in filters:
            out["heldout_bugs"] = sorted(int(b) for b in (_names(filters["heldout_bugs"])
                                                          if isinstance(filters["heldout_bugs"], str)
                                                          else filters["heldout_bugs"]))
        if kind == "rl" and ("band" in filters or "solver" in filters):
            _curriculum(filters, out)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad filter value: {exc}") from None
    if not 0 <= out["heldout_fraction"] < 1:
        raise ValueError("heldout_fraction must be at least 0 and below 1")
    out["split_by"] = filters.get("split_by", "bug")
    if out["split_by"] not in ("bug", "repository"):
        raise ValueError("split_by must be 'bug' or 'repository'")
    if "heldout_bugs" in out and out["split_by"] != "bug":
        raise ValueError("heldout_bugs only applies when splitting by bug")
    if kind == "rl":
        bad = set(out.get("statuses", [])) - {"valid", "approved"}
        if bad:
            raise ValueError(f"RL sets take valid or approved bugs only, not {', '.join(sorted(bad))}")
    return out


def _check_name(name: str) -> None:
    from django.core.validators import validate_slug
    from django.core.exceptions import ValidationError

    try:
        validate_slug(name)
    except ValidationError:
        raise ValueError(f"dataset name {name!r}: use letters, digits, - and _ only") from None
    if Dataset.objects.filter(name=name).exists():
        raise ValueError(f"a dataset named {name} already exists (datasets are immutable: pick a new name)")


def _existing(model, field: str, names: list[str], what: str) -> None:
    missing = sorted(set(names) - set(model.objects.filter(**{f"{field}__in": names}).values_list(field, flat=True)))
    if missing:
        raise ValueError(f"no such {what}: {', '.join(missing)}")


def sft_rows(filters: dict) -> tuple[list[dict], dict]:
    """(rows, figures of what each filter dropped) for validated SFT filters."""
    from episodes.models import Episode, Repository, Teacher

    if filters.get("teacher"):
        _existing(Teacher, "name", filters["teacher"], "teacher")
    if filters.get("repository"):
        _existing(Repository, "name", filters["repository"], "repository")
    episodes = Episode.objects.select_related("bug__repository", "teacher").filter(
        reward__gte=filters.get("min_reward", 1.0)
    ).exclude(trajectory={})
    if filters.get("teacher"):
        episodes = episodes.filter(teacher__name__in=filters["teacher"])
    if filters.get("repository"):
        episodes = episodes.filter(bug__repository__name__in=filters["repository"])
    from episodes.engine.trajectories.canonical import check_canonical

    dropped = {"unknown_terms": 0, "disallowed_terms": 0, "too_long": 0, "empty": 0, "malformed": 0, "suspicious": 0}
    warnings, rows, flagged_kept = [], [], 0
    for ep in episodes.order_by("id"):
        if ep.grading_flagged and not filters.get("include_suspicious"):
            dropped["suspicious"] += 1
            continue
        terms = ep.teacher.terms_allow_training
        if terms is None and not filters.get("allow_unknown_terms"):
            dropped["unknown_terms"] += 1
            continue
        if terms is False and not filters.get("allow_disallowed_terms"):
            dropped["disallowed_terms"] += 1
            continue
        trajectory = ep.trajectory or {}
        if not trajectory.get("messages"):
            dropped["empty"] += 1
            continue
        if filters.get("max_length") and len(json.dumps(trajectory["messages"])) > filters["max_length"]:
            dropped["too_long"] += 1
            continue
        row = engine.sft_row(
            trajectory, ep.bug_id, ep.bug.repository.name, episode_id=ep.pk, teacher=ep.teacher.name,
            terms_allow_training=terms, difficulty=ep.bug.difficulty or "",
        )
        # checked as normalized (arguments decoded): a tool result answering no call, a bad
        # role or schema would have SFT train on noise
        if check_canonical({"messages": row["messages"], "tools": json.loads(row["tools"])}):
            dropped["malformed"] += 1
            continue
        rows.append(row)
        flagged_kept += ep.grading_flagged
    if filters.get("allow_unknown_terms") and any(r["terms_allow_training"] is None for r in rows):
        warnings.append("includes episodes whose teacher's terms of use are not recorded")
    if flagged_kept:
        warnings.append(f"includes {flagged_kept} episode(s) whose graded change was flagged suspicious or tampered")
    if filters.get("allow_disallowed_terms") and any(r["terms_allow_training"] is False for r in rows):
        warnings.append("includes episodes whose teacher's terms do not allow training use")
    # Duplicates: the same conversation twice (one bug attempted identically) counts once.
    rows, dropped["duplicates"] = engine.dedupe(
        rows, key=lambda r: engine.row_hash({"messages": r["messages"], "tools": r["tools"]})
    )
    return rows, {"dropped": dropped, "warnings": warnings, "episodes_matched": episodes.count()}


def _curriculum(filters: dict, out: dict) -> None:
    """A target solve-rate band for one solver: {"solver", "band": [low, high], "min_attempts"}."""
    solver = str(filters.get("solver", "")).strip()
    if not solver:
        raise ValueError("a band needs the solver whose solve rate it is (e.g. teacher:sonnet)")
    band = filters.get("band", [0.2, 0.8])
    if isinstance(band, str):
        band = [b for b in band.replace("–", ",").replace("-", ",").split(",") if b.strip()]
    low, high = (float(b) for b in band)
    if low > 1 or high > 1:  # given in percent
        low, high = low / 100, high / 100
    if not 0 <= low <= high <= 1:
        raise ValueError("band is two solve rates, low ≤ high, between 0 and 1 (or 0 and 100%)")
    out["solver"], out["band"] = solver, [low, high]
    out["min_attempts"] = int(filters.get("min_attempts", 1))
    if out["min_attempts"] < 1:
        raise ValueError("min_attempts must be at least 1")


def rl_task(bug) -> dict:
    """What the GRPO environment's reset needs to rebuild the buggy workspace and grade it."""
    from episodes.sandboxes import environment_data

    repo = bug.repository
    return {
        "bug_id": bug.pk,
        "repository": repo.name,
        "source": repo.source,
        "commit": bug.base_commit or repo.pinned_commit,
        "patch": bug.patch,
        "verifier": bug.verifier,
        "test_command": repo.test_command,
        "fail_to_pass": list(bug.fail_to_pass),
        "pass_to_pass": list(bug.pass_to_pass),
        "environment": environment_data(repo),
        "baseline_duration_s": repo.baseline_duration_s,
        "problem_statement": bug.problem_statement,
        "difficulty": bug.difficulty or "",
    }


def rl_rows(filters: dict) -> tuple[list[dict], dict]:
    from episodes.models import Bug, Repository

    if filters.get("repository"):
        _existing(Repository, "name", filters["repository"], "repository")
    statuses = filters.get("statuses") or ["approved"]
    bugs = Bug.objects.select_related("repository").filter(status__in=statuses, quarantined=False)
    if filters.get("repository"):
        bugs = bugs.filter(repository__name__in=filters["repository"])
    threshold = filters.get("max_flake_rate", settings.BUGFORGE_FLAKE_TARGET)
    rows, dropped = [], {"flaky": 0, "not_stable": 0, "no_verifier": 0}
    curriculum = {}
    if filters.get("solver"):
        from episodes.curation.difficulty import band_select

        ids = list(bugs.order_by("id").values_list("pk", flat=True))
        kept, reasons = band_select(ids, filters["solver"], tuple(filters["band"]), filters.get("min_attempts", 1))
        bugs = bugs.filter(pk__in=kept)
        dropped["out_of_band"] = len(reasons)
        curriculum = {"solver": filters["solver"], "band": filters["band"], "kept": len(kept),
                      "dropped_bugs": {str(k): v for k, v in sorted(reasons.items())}}
    for bug in bugs.order_by("id"):
        if not bug.verifier.strip():
            dropped["no_verifier"] += 1
            continue
        if filters.get("include_flaky") or bug.stable_at(threshold):
            pass
        elif bug.flip_rate:
            dropped["flaky"] += 1  # its verifier disagreed with itself at least once
            continue
        else:  # too few runs for the bound to be below the threshold: `manage.py stabilize`
            dropped["not_stable"] += 1
            continue
        rows.append(engine.rl_row(bug.pk, bug.repository.name, bug.problem_statement, rl_task(bug),
                                  difficulty=bug.difficulty or "", method=bug.method,
                                  solve_rate=bug.solve_rate, solve_attempts=bug.solve_attempts))
    rows, dropped["duplicates"] = engine.dedupe(rows, key=lambda r: json.loads(r["task"])["patch"] + r["repository"])
    figures = {"dropped": dropped, "warnings": [], "statuses": statuses, "max_flake_rate": threshold}
    if curriculum:
        figures["curriculum"] = curriculum
    return rows, figures


def _build(kind: str, name: str, filters: dict | None, user) -> Dataset:
    _check_name(name)
    clean = clean_filters(kind, filters)
    rows, figures = (sft_rows if kind == "sft" else rl_rows)(clean)
    if not rows:
        what = "successful episodes" if kind == "sft" else "bugs"
        hint = ""
        dropped = {k: v for k, v in figures["dropped"].items() if v}
        if dropped:
            hint = " (dropped: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in dropped.items()) + ")"
            if dropped.get("unknown_terms"):
                hint += "; set allow_unknown_terms to keep episodes whose teacher's terms are not recorded"
        raise ValueError(f"no {what} match these filters{hint}")
    result = engine.split(rows, clean["heldout_fraction"], by=clean["split_by"], seed=clean["seed"],
                          heldout_keys=clean.get("heldout_bugs"))
    leaks = result.leaks()
    if leaks:  # cannot happen by construction; refuse rather than save a leaking set
        raise ValueError(f"split leaks across train and held-out: {leaks}")
    if not result.train:  # usable for evaluation only; launch refuses to train on it
        figures["warnings"].append("every row is held out: this set can evaluate, not train")
    dest = datasets_dir() / name
    if dest.exists():
        shutil.rmtree(dest)  # leftovers of a build that failed before its row was saved
    manifest = engine.save(dest, result, {"kind": kind, "name": name, "filters": clean, **figures})
    try:
        with transaction.atomic():
            return Dataset.objects.create(
                name=name, kind=kind, filters=clean, manifest=manifest, path=str(dest),
                train_rows=len(result.train), heldout_rows=len(result.heldout),
                content_hash=manifest["content_hash"], created_by=user,
            )
    except Exception:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def build_sft_dataset(name: str, filters: dict | None = None, user=None) -> Dataset:
    """Successful episodes → canonical `{"messages", "tools"}` rows, split by bug or repository."""
    return _build("sft", name, filters, user)


def build_rl_dataset(name: str, filters: dict | None = None, user=None) -> Dataset:
    """Approved, non-flaky bugs with their verifiers and problem statements, split likewise."""
    return _build("rl", name, filters, user)
