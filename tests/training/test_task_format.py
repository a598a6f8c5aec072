"""One task format from SFT to GRPO to evaluation: for the same bug, the SFT row recorded from a
built-in agent run, the GRPO rollout's prompt (as GRPOTrainer itself tokenizes it, tools taken
from BugEnvironment's methods) and an evaluation's first request (``attempt_task`` against a
local fake OpenAI server) carry the same system prompt, task and tool schemas — and render,
with the tiny model's chat template, to a byte-identical system + tools + task prefix.

No database and no sandbox: the agent's tools here only view a scratch directory and submit.
"""
import contextlib
import inspect
import json
from types import SimpleNamespace

import pytest

from episodes.engine.solve.agent.loop import AgentLimits, run_agent
from episodes.engine.solve.agent.tools import Workbench
from episodes.engine.llm import EndpointConfig
from episodes.engine.sandbox.base import Limits
from episodes.engine.solve.task_format import SYSTEM_PROMPT, TOOL_SCHEMAS, prompt_messages, task_prompt
from episodes.engine.trajectories.canonical import canonical_from_calls
from training.engine import rows as ds
from training.engine import grpo_env
from training.engine import eval_runner as evaluate
from training.engine.serve import _template_messages

from tests.llm.fake_upstream import FakeUpstream, Reply

PROBLEM = "Parcels at a band's exact weight limit are charged the next band's price."
TASK = {"bug_id": 7, "repository": "cartcalc", "problem_statement": PROBLEM, "patch": "", "verifier": ""}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from training.engine.tiny_model import make_tiny_model

    return str(make_tiny_model(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="module")
def tok(tiny):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny)


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "shipping.py").write_text("def band_for(weight):\n    return weight < 500\n")
    return tmp_path


def _call(call_id, name, **arguments):
    return {"id": call_id, "name": name, "arguments": arguments}


def _recorded(result) -> dict:
    """A ChatResult as the gateway records a call (what ``canonical_from_calls`` reads)."""
    return {"protocol": result.protocol, "path": "/v1/chat/completions", "request": result.request,
            "response": result.response, "status_code": result.status_code, "error": result.error}


@pytest.fixture
def sft_row(workspace):
    """An SFT row from a trajectory the built-in agent recorded: a teacher views the file and
    submits; the calls become the canonical trajectory exactly as for an episode."""
    calls = []
    with FakeUpstream() as up:
        up.script(Reply(tool_calls=[_call("c1", "view", path="shipping.py")]),
                  Reply(tool_calls=[_call("c2", "submit")]))
        result = run_agent(EndpointConfig("openai_chat", up.url, "teacher"), Workbench(None, workspace),
                           task_prompt(PROBLEM), on_call=calls.append)
    assert result.exit_reason == "submitted", result.error
    trajectory = canonical_from_calls([_recorded(c) for c in calls])
    return ds.sft_row(trajectory, TASK["bug_id"], TASK["repository"])


@pytest.fixture
def eval_request(workspace, monkeypatch):
    """The first request body of an evaluation attempt (``evaluate.attempt_task``), captured by a
    fake OpenAI server; the checkout and the grader are stubbed (no sandbox needed)."""
    sandbox = SimpleNamespace(
        executor=None, limits=Limits(timeout_s=10),
        workspaces=SimpleNamespace(task_checkout=lambda mirror, commit, patch: contextlib.nullcontext(workspace)),
        repo_spec=lambda task: SimpleNamespace(mirror=None, commit="c0ffee", environment=None),
    )
    monkeypatch.setattr(evaluate, "grade", lambda *a, **k: SimpleNamespace(reward=False, reason="stubbed"))
    with FakeUpstream() as up:
        up.script("I could not find the bug.")
        attempt = evaluate.attempt_task(EndpointConfig("openai_chat", up.url, "student"), sandbox, TASK, 1,
                                        AgentLimits(max_steps=2))
    assert attempt.exit_reason == "finished", attempt.error
    return up.requests[0].body


@pytest.fixture(scope="module")
def grpo_trainer(tiny, tok, tmp_path_factory):
    """A real GRPOTrainer over the RL row, with BugEnvironment as its environment (built, never
    trained: the probe instance is never reset, so it needs no sandbox)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    row = ds.rl_row(TASK["bug_id"], TASK["repository"], PROBLEM, TASK)
    args = GRPOConfig(output_dir=str(tmp_path_factory.mktemp("grpo")), use_cpu=True, report_to="none",
                      num_generations=2, per_device_train_batch_size=2, max_completion_length=16, disable_tqdm=True)
    trainer = GRPOTrainer(model=tiny, reward_funcs=[grpo_env.verifier_reward], args=args, processing_class=tok,
                          train_dataset=Dataset.from_list([row]),
                          environment_factory=lambda: grpo_env.BugEnvironment(None))
    return trainer, row


def grpo_prompt_ids(trainer, row) -> list[int]:
    """The rollout's prompt tokens, by GRPOTrainer's own code path (its per-environment tools
    and, the qwen3 template not being prefix-preserving, its training chat template)."""
    trainer._batch_environments = [None]
    ids, _, _ = trainer._tokenize_prompts([row["prompt"]])
    return list(ids[0])


def served_prompt(tok, body: dict) -> str:
    """The text the local model server renders a request to (``serve.Generator.complete``)."""
    return tok.apply_chat_template(_template_messages(body["messages"]), tools=body.get("tools") or None,
                                   add_generation_prompt=True, tokenize=False)


# --- the same system prompt, task and tools, as data ------------------------------------------


def test_all_three_start_with_the_same_system_prompt_task_and_tools(sft_row, eval_request, grpo_trainer):
    from transformers.utils import get_json_schema

    trainer, rl_row = grpo_trainer
    head = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": task_prompt(PROBLEM)}]
    assert PROBLEM in head[1]["content"] and "submit" in head[1]["content"]

    # SFT: the recorded conversation starts with the agent's head; its tools are TOOL_SCHEMAS
    assert sft_row["messages"][:2] == head
    assert [m["role"] for m in sft_row["messages"][2:]] == ["assistant", "tool", "assistant"]
    assert sft_row["tools"] == json.dumps(TOOL_SCHEMAS, ensure_ascii=False)  # key order kept too

    # evaluation: attempt_task's first request
    assert eval_request["messages"] == head
    assert eval_request["tools"] == TOOL_SCHEMAS

    # GRPO: the RL row's prompt, and the tools TRL hands the chat template for BugEnvironment
    assert rl_row["prompt"] == head == prompt_messages(PROBLEM)
    env_tools = trainer._env_tools[None]
    assert all(inspect.ismethod(t) and isinstance(t.__self__, grpo_env.BugEnvironment) for t in env_tools)
    schemas = [get_json_schema(t) for t in env_tools]
    assert json.dumps(schemas) == json.dumps(TOOL_SCHEMAS)  # equal, and in the same key and list order
    for got, want in zip(schemas, TOOL_SCHEMAS, strict=True):  # field by field, for a readable failure
        g, w = got["function"], want["function"]
        assert (g["name"], g["description"]) == (w["name"], w["description"])
        assert g["parameters"] == w["parameters"], g["name"]


# --- the same rendered prompt ------------------------------------------------------------------


def test_the_rendered_prompt_is_byte_identical_in_sft_grpo_and_evaluation(sft_row, eval_request, grpo_trainer, tok):
    trainer, rl_row = grpo_trainer
    grpo_ids = grpo_prompt_ids(trainer, rl_row)
    grpo_text = tok.decode(grpo_ids)

    # evaluation: what the local model server renders attempt_task's first request to
    eval_text = served_prompt(tok, eval_request)
    assert grpo_text == eval_text
    assert grpo_ids == tok(eval_text, add_special_tokens=False)["input_ids"]

    # SFT: the row as SFTTrainer renders it (tools column parsed from its JSON string) — the
    # prompt is the start of the trained sequence, token for token
    sft_text = tok.apply_chat_template(sft_row["messages"], tools=json.loads(sft_row["tools"]), tokenize=False)
    sft_ids = tok.apply_chat_template(sft_row["messages"], tools=json.loads(sft_row["tools"]), tokenize=True,
                                      return_dict=True)["input_ids"]
    assert sft_text.startswith(grpo_text)
    assert sft_ids[:len(grpo_ids)] == grpo_ids

    # the shared prefix is the system prompt with every tool schema in order, then the task
    prefix = grpo_text.split("<|im_start|>user\n", 1)[0]
    assert prefix.startswith("<|im_start|>system\n" + SYSTEM_PROMPT + "\n\n# Tools")
    rendered = [json.dumps(t, ensure_ascii=False) for t in TOOL_SCHEMAS]
    assert "<tools>\n" + "\n".join(rendered) + "\n</tools>" in prefix
    assert grpo_text.endswith("<|im_start|>user\n" + task_prompt(PROBLEM) + "<|im_end|>\n<|im_start|>assistant\n")


def test_the_comparison_sees_a_difference_in_the_tools_or_the_prompt(eval_request, grpo_trainer, tok):
    """The rendering is sensitive to what is compared: tools in another order, a changed
    description or another system prompt give another prompt."""
    trainer, rl_row = grpo_trainer
    grpo_text = tok.decode(grpo_prompt_ids(trainer, rl_row))
    reordered = {**eval_request, "tools": TOOL_SCHEMAS[::-1]}
    reworded = {**eval_request, "tools": json.loads(json.dumps(TOOL_SCHEMAS))}
    reworded["tools"][0]["function"]["parameters"]["properties"]["path"]["description"] += "."
    other_system = {**eval_request, "messages": [{"role": "system", "content": "Fix the bug."}] + eval_request["messages"][1:]}
    for body in (reordered, reworded, other_system):
        assert served_prompt(tok, body) != grpo_text


# --- the GRPO tools are TOOL_SCHEMAS by construction, and act like the agent's ---------------


def test_environment_methods_are_made_from_the_schemas():
    from transformers.utils import get_json_schema

    for tool in TOOL_SCHEMAS:
        name = tool["function"]["name"]
        method = getattr(grpo_env.BugEnvironment, name)
        assert method.__doc__ == grpo_env.tool_docstring(tool["function"])
        assert get_json_schema(method) == tool
        params = inspect.signature(method).parameters
        assert list(params)[1:] == list(tool["function"]["parameters"]["properties"])
        required = [p for p in list(params)[1:] if params[p].default is inspect.Parameter.empty]
        assert required == tool["function"]["parameters"].get("required", [])
    # TRL lists an environment's methods by name: TOOL_SCHEMAS must already be in that order
    assert [t["function"]["name"] for t in TOOL_SCHEMAS] == sorted(t["function"]["name"] for t in TOOL_SCHEMAS)


def test_environment_tools_check_arguments_like_the_agent(workspace):
    """TRL calls ``tool(**arguments)``: the generated methods hand the arguments to the same
    ``Workbench.call`` the agent uses, so mistakes come back as the same ``error:`` texts."""
    env = grpo_env.BugEnvironment(None)
    assert env.view(path="shipping.py").startswith("error: no workspace")
    env._bench = Workbench(None, workspace)
    agent = Workbench(None, workspace)
    assert env.view(path="shipping.py", start_line=2) == "     2\t    return weight < 500"
    for name, args in [("view", {"path": "shipping.py", "bogus": 1}), ("view", {"path": 3}),
                       ("view", {"path": "shipping.py", "start_line": 0}), ("edit", {"path": "shipping.py"}),
                       ("shell", {})]:
        got = getattr(env, name)(**args)
        assert got.startswith("error: ") and got == agent.call(name, args), (name, args, got)
    assert env.view(path="shipping.py", end_line=-1) == "error: end_line must be 1 or more (lines are numbered from 1)"
    assert env.edit("shipping.py", "< 500", new="<= 500").startswith("edited shipping.py")  # in order, too
    assert env.view("shipping.py", 2, 2) == "     2\t    return weight <= 500"
    with pytest.raises(TypeError):
        env.view("shipping.py", path="other.py")
    assert env.submit() == "submitted: your changes will now be graded" and env._bench.submitted
