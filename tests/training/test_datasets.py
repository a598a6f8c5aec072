"""Dataset builders: filters, provenance, deduplication, leakage-free splits, deterministic
hashes, immutability, files on disk."""
import json
from pathlib import Path

import pytest
from datasets import load_from_disk

from episodes.models import Teacher
from training.datasets import build_rl_dataset, build_sft_dataset
from training.engine import rows as engine
from training.models import Dataset

from tests.factories import make_bug, make_episode, make_repo

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db):
    """Two repositories × 3 bugs; two teachers (terms allowed / unknown); mixed rewards."""
    a, b = make_repo("lib-a"), make_repo("lib-b")
    ok = Teacher.objects.create(name="open", terms_allow_training=True)
    unknown = Teacher.objects.create(name="unknown", terms_allow_training=None)
    bugs = [make_bug(repo, n) for repo in (a, b) for n in range(3)]
    for i, bug in enumerate(bugs):
        make_episode(bug, ok, reward=1.0, text=f"fix {i}")
        make_episode(bug, ok, reward=0.0, text=f"fail {i}")
    make_episode(bugs[0], unknown, reward=1.0, text="unknown terms")
    make_episode(bugs[1], ok, reward=1.0, text="fix 1")  # an exact duplicate of an earlier trajectory
    return {"bugs": bugs, "repos": (a, b)}


def test_sft_filters_reward_provenance_and_duplicates(world):
    ds = build_sft_dataset("sft-all", {"heldout_fraction": 0})
    assert ds.train_rows == 6  # successes only; unknown terms refused; the duplicate counted once
    assert ds.manifest["dropped"]["unknown_terms"] == 1 and ds.manifest["dropped"]["duplicates"] == 1
    with_unknown = build_sft_dataset("sft-unknown", {"heldout_fraction": 0, "allow_unknown_terms": True})
    assert with_unknown.train_rows == 7
    assert any("not recorded" in w for w in with_unknown.manifest["warnings"])
    only_b = build_sft_dataset("sft-b", {"repository": "lib-b", "heldout_fraction": 0})
    assert only_b.train_rows == 3 and only_b.manifest["repositories"]["train"] == ["lib-b"]
    everything = build_sft_dataset("sft-any-reward", {"min_reward": 0, "heldout_fraction": 0})
    assert everything.train_rows == 12
    with pytest.raises(ValueError, match="no successful episodes match.*too long"):
        build_sft_dataset("sft-short", {"max_length": 10})
    with pytest.raises(ValueError, match="allow_unknown_terms"):
        build_sft_dataset("sft-unknown-only", {"teacher": "unknown"})
    with pytest.raises(ValueError, match="no such teacher: nobody"):
        build_sft_dataset("sft-x", {"teacher": "nobody"})
    with pytest.raises(ValueError, match="unknown filter"):
        build_sft_dataset("sft-y", {"colour": "blue"})


def test_sft_keeps_suspicious_or_tampered_episodes_out_unless_asked(world):
    from episodes.models import Episode

    ok = Teacher.objects.get(name="open")
    hacked = make_episode(world["bugs"][0], ok, reward=1.0, text="forged the report")
    Episode.objects.filter(pk=hacked.pk).update(integrity=Episode.Integrity.SUSPICIOUS)
    tampered = make_episode(world["bugs"][1], ok, reward=1.0, text="rewrote the results")
    Episode.objects.filter(pk=tampered.pk).update(integrity=Episode.Integrity.TAMPERED)
    ds = build_sft_dataset("sft-clean", {"heldout_fraction": 0})
    assert ds.train_rows == 6 and ds.manifest["dropped"]["suspicious"] == 2
    assert not any(w for w in ds.manifest["warnings"] if "flagged" in w)
    asked = build_sft_dataset("sft-flagged", {"heldout_fraction": 0, "include_suspicious": True})
    assert asked.train_rows == 8 and asked.manifest["dropped"]["suspicious"] == 0
    assert "includes 2 episode(s) whose graded change was flagged suspicious or tampered" in asked.manifest["warnings"]
    from django.core.management import call_command

    call_command("build_dataset", "--kind", "sft", "--name", "sft-cli-flagged", "--include-suspicious",
                 "--heldout-fraction", "0", stdout=open("/dev/null", "w"))
    assert Dataset.objects.get(name="sft-cli-flagged").train_rows == 8


def test_sft_drops_trajectories_that_are_not_canonical(world):
    from episodes.models import Episode

    broken = Episode.objects.create(bug=world["bugs"][2], teacher=Teacher.objects.get(name="open"), reward=1.0, status="solved",
                                    trajectory={"messages": [{"role": "user", "content": "fix it"},
                                                             {"role": "tool", "tool_call_id": "nope", "content": "orphan"}],
                                                "tools": []})
    ds = build_sft_dataset("sft-checked", {"heldout_fraction": 0})
    assert ds.train_rows == 6 and ds.manifest["dropped"]["malformed"] == 1
    assert broken.pk not in [row["episode_id"] for row in engine.load_jsonl(Path(ds.path) / "train.jsonl")]


def test_sft_rows_are_canonical_and_saved_three_ways(world):
    ds = build_sft_dataset("sft-files", {"heldout_fraction": 0.34, "seed": 3})
    path = Path(ds.path)
    hf = load_from_disk(str(path / "hf"))
    assert len(hf["train"]) == ds.train_rows and len(hf["heldout"]) == ds.heldout_rows
    row = hf["train"][0]
    assert isinstance(row["tools"], str) and json.loads(row["tools"])[0]["function"]["name"] == "shell"
    # the schemas keep the recorded key order: they are rendered into the prompt the student sees
    assert list(json.loads(row["tools"])[0]) == ["type", "function"]
    call = row["messages"][2]["tool_calls"][0]["function"]
    assert call["arguments"] == {"command": "pytest -q"}  # decoded from the JSON string the teacher sent
    assert len(engine.load_jsonl(path / "train.jsonl")) == ds.train_rows
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["content_hash"] == ds.content_hash and manifest["filters"]["seed"] == 3


def test_split_never_leaks_bugs_or_repositories(world):
    by_bug = build_sft_dataset("by-bug", {"heldout_fraction": 0.5, "min_reward": 0})
    train, held = by_bug.manifest["bugs"]["train"], by_bug.manifest["bugs"]["heldout"]
    assert train and held and not set(train) & set(held)
    by_repo = build_sft_dataset("by-repo", {"split_by": "repository", "heldout_fraction": 0.5, "min_reward": 0})
    repos = by_repo.manifest["repositories"]
    assert len(repos["train"]) == 1 and len(repos["heldout"]) == 1 and repos["train"] != repos["heldout"]
    assert not set(by_repo.manifest["bugs"]["train"]) & set(by_repo.manifest["bugs"]["heldout"])
    explicit = build_sft_dataset("explicit", {"heldout_bugs": [world["bugs"][0].pk]})
    assert explicit.manifest["bugs"]["heldout"] == [world["bugs"][0].pk]


@pytest.mark.sqlite
def test_split_leak_check_and_engine_split_by_repository():
    rows = [{"bug_id": b, "repository": r} for b, r in [(1, "a"), (1, "a"), (2, "a"), (3, "b"), (4, "c")]]
    for seed in range(5):
        result = engine.split(rows, 0.34, by="repository", seed=seed)
        assert result.leaks() == {} and result.heldout and result.train
    leaky = engine.Split(train=[rows[0]], heldout=[rows[1], rows[3]], by="repository")
    assert leaky.leaks() == {"bug_id": [1], "repository": ["a"]}


def test_hashes_are_deterministic(world):
    first = build_sft_dataset("h1", {"heldout_fraction": 0.3, "seed": 1})
    again = build_sft_dataset("h2", {"heldout_fraction": 0.3, "seed": 1})
    other = build_sft_dataset("h3", {"heldout_fraction": 0.3, "seed": 2})
    assert first.content_hash == again.content_hash
    assert first.manifest["hashes"] == again.manifest["hashes"]
    assert first.manifest["bugs"] == again.manifest["bugs"]
    assert other.content_hash == first.content_hash  # same rows, another split
    assert engine.row_hash({"a": 1, "b": [1, 2]}) == engine.row_hash({"b": [1, 2], "a": 1})
    assert engine.rows_hash([{"x": 1}, {"x": 2}]) == engine.rows_hash([{"x": 2}, {"x": 1}])


@pytest.mark.sqlite
def test_datasets_are_immutable_and_names_unique(world):
    ds = build_sft_dataset("frozen", {"heldout_fraction": 0})
    ds.train_rows = 99
    with pytest.raises(ValueError, match="immutable"):
        ds.save()
    with pytest.raises(ValueError, match="already exists"):
        build_sft_dataset("frozen", {})
    with pytest.raises(ValueError, match="letters, digits"):
        build_sft_dataset("no spaces please", {})
    assert Dataset.objects.get(name="frozen").train_rows == 6


def test_rl_set_takes_approved_non_flaky_bugs(world):
    from episodes.engine.solve.task_format import prompt_messages

    bugs = world["bugs"]
    make_bug(world["repos"][0], 10, status="valid")
    make_bug(world["repos"][0], 11, status="flaky")
    type(bugs[2]).objects.filter(pk=bugs[2].pk).update(flip_rate=0.2, clean_passes=4)  # approved, but disagreed once
    type(bugs[3]).objects.filter(pk=bugs[3].pk).update(quarantined=True)
    # never disagreed, but 3 runs a side bound the flake rate only at < 63%: not stable at the 50% target
    make_bug(world["repos"][0], 12, clean_runs=3, clean_passes=3, buggy_runs=3, buggy_fails=3, flake_upper_bound=0.632)
    ds = build_rl_dataset("rl", {"heldout_fraction": 0})
    assert ds.train_rows == 4 and ds.manifest["dropped"]["flaky"] == 1 and ds.manifest["dropped"]["not_stable"] == 1
    assert ds.manifest["max_flake_rate"] == 0.5 == ds.filters["max_flake_rate"]  # the threshold, in the manifest
    assert build_rl_dataset("rl-loose", {"heldout_fraction": 0, "max_flake_rate": 0.7}).train_rows == 5
    type(bugs[0]).objects.filter(pk=bugs[0].pk).update(stable_reason="checked by hand")
    strict = build_rl_dataset("rl-strict", {"heldout_fraction": 0, "max_flake_rate": 0.01})
    assert strict.train_rows == 1  # only the verifier staff vouched for passes a 1% bar it was never run to
    row = engine.load_jsonl(Path(ds.path) / "train.jsonl")[0]
    task = json.loads(row["task"])
    # the built-in agent's own head (system prompt and task), as the SFT rows and evaluation have it
    assert row["prompt"] == prompt_messages("bug 0")
    assert {"source", "commit", "patch", "verifier", "fail_to_pass", "environment"} <= set(task)
    assert build_rl_dataset("rl-valid", {"statuses": ["approved", "valid"], "heldout_fraction": 0}).train_rows == 5
    with pytest.raises(ValueError, match="valid or approved bugs only"):
        build_rl_dataset("rl-bad", {"statuses": ["candidate"]})


def test_build_dataset_command(world):
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("build_dataset", "--kind", "sft", "--name", "cli-sft", "--split-by", "repository",
                 "--heldout-fraction", "0.5", stdout=out)
    ds = Dataset.objects.get(name="cli-sft")
    assert f"{ds.train_rows} train / {ds.heldout_rows} held-out rows" in out.getvalue()
    assert ds.filters["split_by"] == "repository"
    with pytest.raises(CommandError, match="applies to SFT sets only"):
        call_command("build_dataset", "--kind", "rl", "--name", "cli-rl", "--teacher", "open")
    with pytest.raises(CommandError, match="no successful episodes"):
        call_command("build_dataset", "--kind", "sft", "--name", "cli-none", "--repo", "lib-a", "--min-reward", "2")


def test_grpo_environment_exposes_exactly_the_agent_tools():
    """The student is trained with the tools it is evaluated with: the environment's public
    methods are the built-in agent's TOOL_SCHEMAS, argument for argument."""
    import inspect

    from episodes.engine.solve.agent.tools import TOOL_SCHEMAS
    from training.engine.grpo_env import BugEnvironment

    methods = {name: fn for name, fn in inspect.getmembers(BugEnvironment, inspect.isfunction)
               if not name.startswith("_") and name != "reset"}
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOL_SCHEMAS}
    assert set(methods) == set(schemas)
    for name, fn in methods.items():
        params = [p for p in inspect.signature(fn).parameters if p != "self"]
        assert set(params) == set(schemas[name].get("properties", {})), name


def test_sft_rows_render_the_prompt_the_agent_sends(tiny_model):
    """What SFT trains on must be what the student sees when it runs as the built-in agent: the
    row's system/task prompt with its tools renders to the same text as the agent loop's
    request rendered by the local model server."""
    from transformers import AutoTokenizer

    from episodes.engine.solve.agent.loop import request_body
    from episodes.engine.solve.task_format import SYSTEM_PROMPT, TOOL_SCHEMAS, task_prompt

    head = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": task_prompt("x fails")}]
    row = engine.sft_row({"messages": head + [{"role": "assistant", "content": "ok"}], "tools": TOOL_SCHEMAS}, 1, "r")
    tok = AutoTokenizer.from_pretrained(tiny_model)
    trained = tok.apply_chat_template(row["messages"][:2], tools=json.loads(row["tools"]), tokenize=False,
                                      add_generation_prompt=True)
    body = request_body("openai_chat", head, TOOL_SCHEMAS)
    served = tok.apply_chat_template(body["messages"], tools=body["tools"], tokenize=False, add_generation_prompt=True)
    assert trained == served
