"""LLM-written problem statements through the Django shell: the job on `inject`, the staff-only
bug-page form, the `statement` command and the batch option, against a real local HTTP model
server, the real sandbox, PostgreSQL and Redis."""
import io

import django_rq
import pytest
from django.core.management import CommandError, call_command
from rq import SimpleWorker

from episodes.injection import batches as injection
from episodes.models import AuditEvent, Bug, LLMCall, LLMEndpoint

from .llm.fake_upstream import FakeUpstream
from .llm.test_injector import KEY, reply

pytestmark = pytest.mark.django_db(transaction=True)

TARGET = "cartcalc/shipping.py::ShippingPolicy.band_for"
STATEMENT = """\
### STATEMENT
A parcel that weighs exactly the limit of the lightest weight band is charged the price of the
next band. To reproduce, price a cart whose parcel weighs exactly the documented limit of the first
band: I expected the first band's price, but I got the second band's price instead.
"""
LEAKY = "### STATEMENT\nThe bug is in band_for in cartcalc/shipping.py: change `<` to `<=`.\n"


def burst():
    SimpleWorker([django_rq.get_queue(q) for q in ("inject", "verify")],
                 connection=django_rq.get_connection("verify")).work(burst=True)


@pytest.fixture
def upstream():
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def ep(upstream):
    return LLMEndpoint.objects.create(name="stub", protocol="openai_chat", base_url=upstream.url, model="scripted-1",
                                      api_key=KEY, usd_per_mtok_in=3, usd_per_mtok_out=15)


@pytest.fixture
def valid_bug(sample_repo, settings, upstream, ep):
    settings.BUGFORGE_FLAKE_TARGET = 0.99  # one run a side
    upstream.script(reply())
    batch = injection.start_batch(sample_repo, "llm_modify", 1, seed=4, endpoint=ep, targets=[TARGET], sync=True)
    bug = Bug.objects.get(batch=batch)
    assert bug.status == "valid", (bug.invalid_reason, bug.error)
    assert bug.statement_source == "llm"  # the modify reply's own PROBLEM section
    return bug


def test_staff_form_queues_the_job_which_writes_and_audits(valid_bug, staff_client, upstream, ep):
    page = staff_client.get(valid_bug.get_absolute_url()).content.decode()
    assert 'id="statement-form"' in page and "Rewrite statement" in page and "csrfmiddlewaretoken" in page
    upstream.script(STATEMENT)
    response = staff_client.post(f"/bugs/{valid_bug.pk}/statement/", {"endpoint": ep.pk, "style": "traceback"})
    assert response.status_code == 302 and response["Location"] == valid_bug.get_absolute_url()
    burst()
    valid_bug.refresh_from_db()
    assert valid_bug.statement_source == "llm" and valid_bug.statement_style == "traceback"
    assert valid_bug.problem_statement.startswith("A parcel that weighs exactly")
    assert valid_bug.statement_flags["leaks"] == [] and valid_bug.statement_flags["underspecified"] is False
    event = AuditEvent.objects.get(action="write_statement", target_id=str(valid_bug.pk))
    assert event.actor.username == "staffer" and event.after["statement_style"] == "traceback"
    prompt = upstream.requests[-1].body["messages"][-1]["content"]
    assert "```diff" in prompt and "What failing code printed" in prompt  # patch + the buggy run's output
    page = staff_client.get(valid_bug.get_absolute_url()).content.decode()
    assert 'id="statement-source">llm<' in page and "with a traceback" in page


def test_non_staff_get_403_and_no_job(valid_bug, reviewer_client, ep):
    page = reviewer_client.get(valid_bug.get_absolute_url()).content.decode()
    assert 'id="statement-form"' not in page
    response = reviewer_client.post(f"/bugs/{valid_bug.pk}/statement/", {"endpoint": ep.pk, "style": "symptom"})
    assert response.status_code == 403
    assert django_rq.get_queue("inject").count == 0


def test_command_keeps_leaks_as_flags_and_shows_badges(valid_bug, staff_client, upstream, ep):
    upstream.script(LEAKY, LEAKY, LEAKY)
    out = io.StringIO()
    call_command("statement", str(valid_bug.pk), "--endpoint", "stub", "--style", "symptom", stdout=out)
    valid_bug.refresh_from_db()
    leaks = valid_bug.statement_flags["leaks"]
    assert valid_bug.statement_style == "symptom" and valid_bug.statement_flags["attempts"] == 3
    assert any("names the changed file" in x for x in leaks) and any("says where the bug is" in x for x in leaks)
    assert "leaks:" in out.getvalue()
    page = staff_client.get(valid_bug.get_absolute_url()).content.decode()
    assert 'id="statement-leaks"' in page and 'id="statement-underspecified"' in page
    upstream.script("no header", "no header", "no header")
    with pytest.raises(CommandError, match="not written"):
        call_command("statement", str(valid_bug.pk), "--endpoint", "stub", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="no LLM endpoint"):
        call_command("statement", str(valid_bug.pk), "--endpoint", "nope")


def test_batch_option_inline_rewrites_valid_bugs(sample_repo, settings, upstream, ep):
    settings.BUGFORGE_FLAKE_TARGET = 0.99
    upstream.script(reply(), STATEMENT)
    batch = injection.start_batch(sample_repo, "llm_modify", 1, seed=4, endpoint=ep, targets=[TARGET], sync=True,
                                  statement_style="symptom", statement_endpoint=ep)
    assert batch.options["statement_style"] == "symptom" and batch.options["statement_endpoint"] == ep.pk
    bug = Bug.objects.get(batch=batch)
    assert bug.status == "valid" and bug.statement_style == "symptom" and bug.statement_source == "llm"
    assert bug.problem_statement.startswith("A parcel that weighs exactly")
    assert LLMCall.objects.filter(batch=batch).count() == 2  # the statement's cost counts on the batch


def test_batch_option_queued_runs_after_validation(sample_repo, settings, upstream, ep):
    settings.BUGFORGE_FLAKE_TARGET = 0.99
    upstream.script(reply(), STATEMENT)
    out = io.StringIO()
    call_command("inject", "cartcalc", "--method", "llm_modify", "--count", "1", "--endpoint", "stub",
                 "--target", TARGET, "--statement-style", "function", stdout=out)
    burst()
    bug = Bug.objects.get()
    assert bug.status == "valid" and bug.statement_style == "function" and bug.statement_source == "llm"


def test_procedural_statements_are_marked_template(sample_repo, settings):
    settings.BUGFORGE_FLAKE_TARGET = 0.99
    batch = injection.start_batch(sample_repo, "procedural", 2, seed=3, sync=True)
    bugs = list(Bug.objects.filter(batch=batch).exclude(problem_statement=""))
    assert bugs and all(b.statement_source == "template" for b in bugs)


def _names_location(statement: str, patch: str, target: str) -> bool:
    """Does a statement name the changed file (path, base name or module) or function?"""
    from episodes.engine.inject import issue_text
    ctx = issue_text.IssueContext(patch=patch, target=target)
    return any(x.startswith(("names the changed file", "names the changed function"))
               for x in issue_text.leaks(statement, ctx, "symptom"))


def test_template_statements_never_name_the_changed_function_or_file(sample_repo, capsys):
    """The template (problem_statement_from_failure) over the sample bugs and procedural
    candidates on the sample repository: the share naming the changed function or file is 0."""
    from episodes import sandboxes
    from episodes.engine.inject import problem_statement_from_failure, procedural
    from episodes.engine.repos.samples import SAMPLE_BUGS, sample_patch
    from episodes.sandboxes import repo_spec, workspaces

    spec, validator = repo_spec(sample_repo), sandboxes.validator(sample_repo)
    statements = []  # (statement, patch, target)
    for sample in SAMPLE_BUGS:
        patch = sample_patch(workspaces(), spec.mirror, spec.commit, sample)
        with workspaces().checkout(spec.mirror, spec.commit, patch=patch) as path:
            record = validator.run_suite(spec, path, "buggy", "injection", tests=[sample.path.replace("cartcalc/", "tests/test_")])
        statements.append((problem_statement_from_failure(record.log_excerpt, sample.target.split("::")[1], sample.path),
                           patch, sample.target))
    with workspaces().checkout(spec.mirror, spec.commit) as checkout:
        sources = procedural.read_sources(checkout, sample_repo.coverage)
    for candidate in procedural.plan(sources, sample_repo.coverage, 8, 11, hash_patch=Bug.hash_patch):
        procedural.derive_verifier(validator, spec, candidate)
        if candidate.problem_statement:
            statements.append((candidate.problem_statement, candidate.mutation.patch, candidate.target))
    assert len(statements) >= 10
    naming = [t for s, p, t in statements if _names_location(s, p, t)]
    share = len(naming) / len(statements)
    with capsys.disabled():
        print(f"\ntemplate statements naming the changed function or file: {len(naming)}/{len(statements)} = {share:.0%}")
    from episodes.engine.inject import issue_text
    assert share == 0, [(t, issue_text.leaks(s, issue_text.IssueContext(patch=p, target=t), "symptom"))
                        for s, p, t in statements if _names_location(s, p, t)]
