"""A small OpenAI-compatible Chat Completions server around a local transformers model.

``python -m training.engine.serve --model DIR [--port 0] [--max-new-tokens 256]`` prints
``LISTENING <port>`` once it serves ``POST /v1/chat/completions`` (non-streaming; tools
rendered by the model's chat template, tool calls parsed back from its ``<tool_call>`` JSON
blocks, the format of TRL's bundled qwen templates). It lets the built-in agent loop run a
trained checkpoint or a base model exactly as it runs a teacher endpoint. One request is
generated at a time; bind is 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from training.engine.rows import template_message

TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)
THINK = re.compile(r"<think>.*?</think>\s*", re.S)


def parse_completion(text: str) -> tuple[str, list[dict]]:
    """(content, OpenAI tool_calls) from the model's text; a block that is not valid JSON stays
    in the content (the agent then sees no call and the model's answer as it was)."""
    calls, kept = [], text
    for i, match in enumerate(TOOL_CALL.finditer(text)):
        try:
            data = json.loads(match.group(1))
            name, arguments = data["name"], data.get("arguments", {})
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
        calls.append({"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                      "function": {"name": str(name), "arguments": json.dumps(arguments)}})
        kept = kept.replace(match.group(0), "", 1)
    return THINK.sub("", kept).strip(), calls


def _template_messages(messages: list[dict]) -> list[dict]:
    """The request's messages as the chat template wants them, as the SFT rows have them."""
    return [template_message(m) for m in messages]


class Generator:
    def __init__(self, model_dir: str, max_new_tokens: int = 256, max_context: int = 4096, seed: int = 0,
                 temperature: float = 1.0):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.manual_seed(seed)
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir)
        self.model.eval()
        self.max_new_tokens = max_new_tokens
        self.max_context = max_context
        self.temperature = temperature  # when a request names none (the agent loop does not)
        self.lock = threading.Lock()

    def complete(self, body: dict) -> dict:
        messages = _template_messages(body.get("messages") or [])
        tools = body.get("tools") or None
        prompt = self.tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=False)
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        ids = ids[:, -self.max_context:]  # keep the most recent context a small model can hold
        max_new = min(int(body.get("max_tokens") or body.get("max_completion_tokens") or self.max_new_tokens),
                      self.max_new_tokens)
        temperature = float(body["temperature"] if body.get("temperature") is not None else self.temperature)
        with self.lock, self.torch.no_grad():
            out = self.model.generate(
                ids, attention_mask=self.torch.ones_like(ids), max_new_tokens=max_new,
                do_sample=temperature > 0, temperature=temperature if temperature > 0 else None,
                pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id,
            )
        new = out[0, ids.shape[1]:]
        text = self.tokenizer.decode(new, skip_special_tokens=False)
        for stop in (self.tokenizer.eos_token or "", self.tokenizer.pad_token or ""):
            if stop:
                text = text.split(stop, 1)[0]
        content, calls = parse_completion(text)
        finish = "tool_calls" if calls else ("length" if len(new) >= max_new else "stop")
        message = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:16]}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model") or "local",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": int(ids.shape[1]), "completion_tokens": int(len(new)),
                      "total_tokens": int(ids.shape[1] + len(new))},
        }


def make_handler(generator: Generator):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # quiet: the job's log holds what matters
            pass

        def _send(self, status: int, payload: dict):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                return self._send(200, {"object": "list", "data": [{"id": "local", "object": "model"}]})
            self._send(404, {"error": {"message": "not found"}})

        def do_POST(self):
            if not self.path.rstrip("/").endswith("/chat/completions"):
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            except json.JSONDecodeError:
                return self._send(400, {"error": {"message": "the body is not JSON"}})
            if body.get("stream"):
                return self._send(400, {"error": {"message": "streaming is not supported by this server"}})
            try:
                self._send(200, generator.complete(body))
            except Exception as exc:  # noqa: BLE001 - the client gets a 500 with the reason
                self._send(500, {"error": {"message": f"{type(exc).__name__}: {exc}"}})

    return Handler


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--max-context", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=1.0, help="0 = greedy; used when a request sets none")
    args = parser.parse_args(argv)
    generator = Generator(args.model, args.max_new_tokens, args.max_context, args.seed, args.temperature)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(generator))
    print(f"LISTENING {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
