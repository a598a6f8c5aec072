"""Realism in procedural planning (threshold, per-function cap, stored on the bug) and the
collapse of near-duplicate valid bugs (same changed line, same FAIL_TO_PASS)."""
from collections import Counter

import pytest

from episodes.injection import batches as injection
from episodes.engine.inject import procedural
from episodes.engine.validate.validator import Verdict
from episodes.models import Bug
from episodes.sandboxes import repo_spec, workspaces

pytestmark = pytest.mark.django_db(transaction=True)


def _sources(repo):
    spec = repo_spec(repo)
    with workspaces().checkout(spec.mirror, spec.commit) as checkout:
        return procedural.read_sources(checkout, repo.coverage)


def test_plan_filters_below_the_threshold_and_caps_each_function(sample_repo):
    sources = _sources(sample_repo)
    everything = procedural.plan(sources, sample_repo.coverage, 10_000, 3, min_realism=0, max_per_function=0)
    stats: dict = {}
    filtered = procedural.plan(sources, sample_repo.coverage, 10_000, 3, stats=stats)
    assert any(c.realism < 0.5 for c in everything)  # the unfiltered plan has TypeErrors, NameErrors, stubs
    assert max(Counter(c.target for c in everything).values()) > 2
    assert filtered and all(c.realism >= procedural.MIN_REALISM and c.realism_notes for c in filtered)
    assert max(Counter(c.target for c in filtered).values()) <= procedural.MAX_PER_FUNCTION
    # The plan is short, so every mutation was examined: each is picked, left out as unrealistic or
    # left out by the cap (mutations of a capped function are not scored: planning stays lazy).
    assert stats["unrealistic"] + stats["capped"] + len(filtered) == len(everything)
    assert 0 < stats["unrealistic"] <= sum(1 for c in everything if c.realism < procedural.MIN_REALISM)
    assert "realism threshold" in procedural.shortfall(stats, 10_000, len(filtered))


def test_procedural_batch_stores_realism_and_respects_cap_and_threshold(sample_repo, redis_conn):
    batch = injection.start_batch(sample_repo, "procedural", 12, seed=4, max_per_function=1, min_realism=0.7)
    injection.run_batch(batch.pk)  # validation is queued, not run: planning is under test
    batch.refresh_from_db()
    assert batch.status == "done" and batch.options["max_per_function"] == 1 and batch.options["min_realism"] == 0.7
    bugs = list(Bug.objects.filter(batch=batch))
    assert len(bugs) == 12
    assert all(b.realism is not None and b.realism >= 0.7 and b.realism_notes for b in bugs)
    assert len({b.target for b in bugs}) == 12  # one per function
    assert all(isinstance(n, str) for b in bugs for n in b.realism_notes)


def test_inject_command_passes_realism_options(sample_repo, redis_conn):
    import io

    from django.core.management import call_command

    call_command("inject", "cartcalc", "--count", "2", "--seed", "8", "--min-realism", "0", "--max-per-function", "5",
                 stdout=io.StringIO())
    from episodes.models import InjectionBatch

    batch = InjectionBatch.objects.get()  # queued on 'inject', not run
    assert batch.options["min_realism"] == 0 and batch.options["max_per_function"] == 5


def _bug(repo, candidate):
    m = candidate.mutation
    return Bug.objects.create(repository=repo, base_commit=repo.pinned_commit, method="procedural", operator=m.operator,
                              target=candidate.target, patch=m.patch, verifier="raise SystemExit(1)\n")


def test_valid_bug_on_the_same_line_with_the_same_failures_is_a_near_duplicate(sample_repo):
    sources = _sources(sample_repo)
    plan = procedural.plan(sources, sample_repo.coverage, 10_000, 1, min_realism=0, max_per_function=0)
    by_line = {}
    for c in plan:
        by_line.setdefault((c.mutation.path, c.mutation.line), []).append(c)
    first, second = next(cs for cs in by_line.values() if len(cs) >= 2)[:2]
    other = next(c for c in plan if (c.mutation.path, c.mutation.line) != (first.mutation.path, first.mutation.line))
    a, b, c, d = _bug(sample_repo, first), _bug(sample_repo, second), _bug(sample_repo, other), None
    f2p = ["tests/test_cart.py::test_x", "tests/test_cart.py::test_y"]
    a.apply_verdict(Verdict("valid", fail_to_pass=f2p, pass_to_pass=["p"]))
    b.apply_verdict(Verdict("valid", fail_to_pass=list(reversed(f2p)), pass_to_pass=["p"]))
    c.apply_verdict(Verdict("valid", fail_to_pass=f2p, pass_to_pass=["p"]))  # another line: kept
    a.refresh_from_db(), b.refresh_from_db(), c.refresh_from_db()
    assert a.status == "valid" and c.status == "valid"
    assert b.status == "invalid" and b.invalid_kind == "near_duplicate" and b.duplicate_of_id == a.pk
    assert f"bug {a.pk}" in b.invalid_reason
    # the same line but other failing tests: a different bug, kept
    third = next((x for x in by_line[(first.mutation.path, first.mutation.line)][2:]), None)
    if third is not None:
        d = _bug(sample_repo, third)
        d.apply_verdict(Verdict("valid", fail_to_pass=["tests/test_cart.py::test_z"], pass_to_pass=["p"]))
        d.refresh_from_db()
        assert d.status == "valid"
