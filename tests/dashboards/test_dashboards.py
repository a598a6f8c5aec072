"""Pass-rate dashboards: the figures are right, filtered by repository and date, link to the
rows behind each bar, say what to do when empty, and cost a fixed number of queries."""
import datetime
import json
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from episodes.dashboards import figures as dashboards
from episodes.models import Bug, Episode, InjectionBatch, LLMCall, Repository, Review, Teacher

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def no_cache(settings):
    settings.BUGFORGE_DASHBOARD_CACHE_S = 0  # each test sees its own rows


@pytest.fixture
def world(db, staff):
    a = Repository.objects.create(name="alpha", source="/a", pinned_commit="a" * 40)
    b = Repository.objects.create(name="beta", source="/b", pinned_commit="b" * 40)
    batch = InjectionBatch.objects.create(repository=a, method="llm_modify", requested=4)
    n = iter(range(1000))

    def bug(repo, status, method="procedural", operator="", **kw):
        return Bug.objects.create(repository=repo, base_commit="a" * 40, patch=f"p{next(n)}", verifier="v",
                                  status=status, method=method, operator=operator, **kw)

    bugs = {
        "a_valid": bug(a, "valid", operator="flip_comparison"),
        "a_approved": bug(a, "approved", operator="flip_comparison"),
        "a_invalid": bug(a, "invalid", operator="off_by_one"),
        "a_flaky": bug(a, "flaky", operator="off_by_one"),
        "llm_valid": bug(a, "valid", method="llm_modify", batch=batch),
        "llm_invalid": bug(a, "invalid", method="llm_modify", batch=batch),
        "b_valid": bug(b, "valid"),
    }
    LLMCall.objects.create(batch=batch, protocol="openai_chat", cost_usd=Decimal("0.30"))
    LLMCall.objects.create(batch=batch, protocol="openai_chat", cost_usd=Decimal("0.10"))
    teacher = Teacher.objects.create(name="t1")
    other = Teacher.objects.create(name="t2")
    Episode.objects.create(bug=bugs["a_valid"], teacher=teacher, status="solved", cost_usd=Decimal("1.0"))
    Episode.objects.create(bug=bugs["a_valid"], teacher=teacher, status="solved", cost_usd=Decimal("1.0"))
    Episode.objects.create(bug=bugs["b_valid"], teacher=teacher, status="unsolved", cost_usd=Decimal("2.0"))
    Episode.objects.create(bug=bugs["b_valid"], teacher=other, status="failed", cost_usd=Decimal("0.5"))
    Review.objects.create(bug=bugs["a_approved"], reviewer=staff, verdict="approve", difficulty="<15m")
    Review.objects.create(bug=bugs["a_valid"], reviewer=staff, verdict="approve", difficulty="1h-4h")
    return bugs


def by(rows, key):
    return {r[key]: r for r in rows}


def test_figures(world):
    scope = dashboards.Scope()
    method = dashboards.yield_by_method(scope)
    proc = by(method["rows"], "method")["procedural"]
    assert (proc["valid"], proc["approved"], proc["invalid"], proc["flaky"]) == (2, 1, 1, 1)
    assert dict(zip(method["categories"], method["yield"])) == {"llm_modify": 0.5, "procedural": 0.6}
    ops = by(dashboards.yield_by_operator(scope)["rows"], "operator")
    assert set(ops) == {"flip_comparison", "off_by_one"} and ops["off_by_one"]["flaky"] == 1
    teachers = dashboards.solve_rate_by_teacher(scope)["traces"][0]
    assert dict(zip(teachers["x"], teachers["y"])) == {"t1": round(2 / 3, 3), "t2": None}  # errors are not attempts
    repos = dashboards.solve_rate_by_repository(scope)["traces"][0]
    assert dict(zip(repos["x"], repos["y"])) == {"alpha": 1.0, "beta": 0.0}
    cost = by(dashboards.cost_per_valid_bug(scope)["rows"], "method")
    assert cost["llm_modify"]["per_valid"] == 0.4 and cost["llm_modify"]["valid"] == 1  # 0.40 spent for 1 valid bug
    solved = by(dashboards.cost_per_solved_bug(scope)["rows"], "teacher")
    assert solved["t1"]["per_solved"] == 4.0 and solved["t1"]["solved_bugs"] == 1  # 4 USD, one distinct bug solved
    assert solved["t2"]["per_solved"] is None
    mix = dashboards.difficulty_mix(scope)["traces"][0]
    assert dict(zip(mix["x"], mix["y"])) == {"< 15 min": 1, "1 – 4 h": 1}


def test_suspicious_and_tampered_episodes_per_teacher(world, staff_client):
    from episodes.models import Episode

    scope = dashboards.Scope()
    flagged = {t["name"]: dict(zip(t["x"], t["y"])) for t in dashboards.flagged_by_teacher(scope)["traces"]}
    assert flagged == {"suspicious": {"t1": 0, "t2": 0}, "tampered": {"t1": 0, "t2": 0}}
    first, second = Episode.objects.filter(teacher__name="t1").order_by("pk")[:2]
    Episode.objects.filter(pk=first.pk).update(integrity="suspicious")
    Episode.objects.filter(pk=second.pk).update(integrity="tampered")
    traces = dashboards.flagged_by_teacher(scope)["traces"]
    assert {t["name"]: dict(zip(t["x"], t["y"]))["t1"] for t in traces} == {"suspicious": 1, "tampered": 1}
    body = staff_client.get(traces[1]["customdata"][0]).content.decode()
    assert traces[1]["customdata"][0] == "/episodes/?teacher=t1&integrity=tampered"
    assert f'href="/episodes/{second.pk}/"' in body and f'href="/episodes/{first.pk}/"' not in body
    page = staff_client.get(reverse("dashboards")).content.decode()
    assert 'id="chart-flagged-teacher"' in page  # drawn once there is something to show


def test_filters_by_repository_and_date(world):
    beta = dashboards.yield_by_method(dashboards.Scope(repository="beta"))
    assert [(r["method"], r["valid"]) for r in beta["rows"]] == [("procedural", 1)]
    assert dashboards.cost_per_valid_bug(dashboards.Scope(repository="beta"))["rows"] == []
    Bug.objects.filter(pk=world["b_valid"].pk).update(created_at=timezone.now() - datetime.timedelta(days=10))
    old = timezone.localdate() - datetime.timedelta(days=10)
    rows = dashboards.verdicts_over_time(dashboards.Scope(until=old))["rows"]
    assert [(r["day"], r["valid"]) for r in rows] == [(old, 1)]
    recent = dashboards.verdicts_over_time(dashboards.Scope(since=old + datetime.timedelta(days=1)))["rows"]
    assert sum(r["valid"] + r["approved"] for r in recent) == 3


def test_bars_link_to_the_rows_behind_them(world, staff_client):
    scope = dashboards.Scope(repository="alpha")
    trace = next(t for t in dashboards.yield_by_method(scope)["traces"] if t["name"] == "flaky")
    url = trace["customdata"][trace["x"].index("procedural")]
    assert url == "/bugs/?repository=alpha&status=flaky&method=procedural"
    body = staff_client.get(url).content.decode()
    assert f'data-pk="{world["a_flaky"].pk}"' in body and body.count("data-pk=") == 1
    mix = dashboards.difficulty_mix(scope)["traces"][0]
    body = staff_client.get(mix["customdata"][0]).content.decode()
    assert f'data-pk="{world["a_approved"].pk}"' in body and body.count("data-pk=") == 1  # the review said < 15 min
    teachers = dashboards.solve_rate_by_teacher(scope)["traces"][0]
    assert teachers["customdata"][0] == "/episodes/?repository=alpha&teacher=t1&status=solved"


def test_curator_rejections_lower_the_yield_and_invalid_bugs_split_by_reason(world):
    scope = dashboards.Scope()
    Bug.objects.filter(pk=world["a_valid"].pk).update(status="rejected")
    Bug.objects.filter(pk=world["a_invalid"].pk).update(invalid_kind="timeout_buggy")
    Bug.objects.filter(pk=world["llm_invalid"].pk).update(invalid_kind="no_tests_ran")
    method = dashboards.yield_by_method(scope)
    assert dict(zip(method["categories"], method["yield"]))["procedural"] == 0.4  # 2 usable of 5 settled
    chart = dashboards.invalid_by_reason(scope)
    assert {(t["name"], tuple(t["x"]), tuple(t["y"])) for t in chart["traces"]} == {
        ("no_tests_ran", ("llm_modify", "procedural"), (1, 0)), ("timeout_buggy", ("llm_modify", "procedural"), (0, 1))}
    link = chart["traces"][1]["customdata"][1]
    assert "reason=timeout_buggy" in link and "status=invalid" in link and "method=procedural" in link


def test_page_draws_every_chart_and_bounds_queries(world, staff_client, django_assert_max_num_queries):
    with django_assert_max_num_queries(20):
        response = staff_client.get(reverse("dashboards"), {"repository": "alpha"})
    body = response.content.decode()
    for key, *_ in dashboards.CHARTS:
        assert f'id="section-{key}"' in body
    drawn = re.findall(r'<div id="chart-([\w-]+)" class="chart dash-chart"', body)
    assert set(drawn) == {"yield-method", "yield-operator", "invalid-reason", "verdicts-time", "solve-teacher",
                          "solve-repository", "cost-valid", "cost-solved", "difficulty"}
    traces = json.loads(re.search(r'<script id="yield-method" type="application/json">(.*?)</script>', body).group(1))
    assert {t["name"] for t in traces} == set(dashboards.STACK)
    assert "yield: llm_modify 50% · procedural 50%" in body
    # more rows, same number of queries
    for i in range(30):
        Bug.objects.create(repository=Repository.objects.get(name="alpha"), base_commit="a" * 40, patch=f"x{i}",
                           verifier="v", status="valid", method="combine")
    with django_assert_max_num_queries(20):
        assert staff_client.get(reverse("dashboards")).status_code == 200


def test_empty_states_and_bad_filter(staff_client, reviewer_client):
    body = reviewer_client.get(reverse("dashboards")).content.decode()
    assert "plant a batch" in body and "launch solving for approved bugs from Teachers" in body and "dash-chart" not in body
    body = staff_client.get(reverse("dashboards"), {"since": "2026-05-01", "until": "2026-01-01"}).content.decode()
    assert "start date is after the end date" in body


def test_figures_are_cached_per_filter_and_refreshable(world, staff_client, settings, redis_conn,
                                                       django_assert_max_num_queries):
    settings.BUGFORGE_DASHBOARD_CACHE_S = 60
    redis_conn.flushdb()  # the cache lives in the queues' Redis (the test database)
    staff_client.get(reverse("dashboards"), {"repository": "beta"})
    Bug.objects.create(repository=Repository.objects.get(name="beta"), base_commit="a" * 40, patch="late",
                       verifier="v", status="invalid", method="procedural")
    with django_assert_max_num_queries(3):  # session, user, repositories: no aggregate re-run
        body = staff_client.get(reverse("dashboards"), {"repository": "beta"}).content.decode()
    assert "yield: procedural 100%" in body and 'id="refresh"' in body
    body = staff_client.get(reverse("dashboards"), {"repository": "beta", "fresh": "1"}).content.decode()
    assert "yield: procedural 50%" in body


def test_a_stale_entry_is_served_while_one_request_refreshes_it(world, settings, redis_conn):
    settings.BUGFORGE_DASHBOARD_CACHE_S = 60
    redis_conn.flushdb()
    scope = dashboards.Scope(repository="beta")
    first = dashboards.all_charts(scope)
    cache = dashboards._cache(settings.RQ_QUEUES["verify"]["URL"])
    key = "dashboards:repository=beta"
    stale = {**first, "as_of": first["as_of"] - datetime.timedelta(minutes=5)}
    cache.set(key, stale, 600)
    Bug.objects.create(repository=Repository.objects.get(name="beta"), base_commit="a" * 40, patch="new",
                       verifier="v", status="invalid", method="procedural")
    assert cache.add(key + ":refreshing", 1, timeout=60)  # another request is refreshing it
    assert dashboards.all_charts(scope)["as_of"] == stale["as_of"]  # so this one serves the stale figures
    cache.delete(key + ":refreshing")
    fresh = dashboards.all_charts(scope)
    assert fresh["as_of"] > stale["as_of"] and fresh["total_bugs"] == first["total_bugs"] + 1
    redis_conn.flushdb()
