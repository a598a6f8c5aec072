"""Turn what an upstream model sent back into one stored response (plain Python, no Django).

Streams are Server-Sent Events; ``Reassembler(protocol)`` is fed the raw bytes chunk by chunk
(``feed``) as they pass through the gateway and, at the end (``result()``), gives the response in
the protocol's *non-streaming* shape, so a streamed call and a plain one are stored alike:

* ``openai_chat``: a ``chat.completion`` (content, tool calls with their argument fragments
  joined, finish_reason, usage from the final usage chunk when the client asked for it);
* ``anthropic``: a ``message`` (text, thinking, tool_use blocks whose ``input`` is the joined
  ``partial_json``; stop_reason and usage from ``message_delta``);
* ``openai_responses``: the ``response`` of ``response.completed`` (or, if the stream stopped
  early, one built from the output items and deltas seen so far).

The usage of the reassembled response is read by ``episodes.engine.llm.usage.usage_of``.
"""
from __future__ import annotations

import json
from typing import Iterator


class SSEDecoder:
    """Incremental Server-Sent Events parser: ``feed(bytes)`` yields ``(event, data)`` pairs
    (``event`` is "" when the stream names none, ``data`` the joined data lines)."""

    def __init__(self):
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> Iterator[tuple[str, str]]:
        self._buffer += chunk
        while True:
            cut = self._buffer.find(b"\n")
            if cut < 0:
                return
            line, self._buffer = self._buffer[:cut], self._buffer[cut + 1:]
            yield from self._line(line.rstrip(b"\r").decode("utf-8", "replace"))

    def close(self) -> Iterator[tuple[str, str]]:
        if self._buffer:
            yield from self._line(self._buffer.decode("utf-8", "replace"))
            self._buffer = b""
        yield from self._line("")

    def _line(self, line: str) -> Iterator[tuple[str, str]]:
        if not line:
            if self._data:
                yield self._event, "\n".join(self._data)
            self._event, self._data = "", []
        elif line.startswith(":"):
            return  # comment / keep-alive
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                self._event = value
            elif name == "data":
                self._data.append(value)


def _json(data: str):
    try:
        return json.loads(data)
    except ValueError:
        return None


class Reassembler:
    """Feed it a stream's raw bytes; ``result()`` is the reassembled response, ``error`` any
    error the stream itself reported (an ``error`` event, ``response.failed``...)."""

    def __init__(self, protocol: str):
        self.protocol = protocol
        self.error = ""
        self.events = 0
        self.finished = False  # the protocol's closing event was seen
        self._decoder = SSEDecoder()
        self._handle = {"openai_chat": self._chat, "anthropic": self._anthropic,
                        "openai_responses": self._responses}[protocol]
        # openai_chat
        self._chat_head: dict = {}
        self._choices: dict[int, dict] = {}
        self._usage = None
        # anthropic
        self._message: dict = {}
        self._blocks: dict[int, dict] = {}
        self._partial: dict[int, str] = {}
        # openai_responses
        self._response: dict = {}
        self._items: dict[int, dict] = {}

    def feed(self, chunk: bytes) -> None:
        for event, data in self._decoder.feed(chunk):
            self._dispatch(event, data)

    def _dispatch(self, event: str, data: str) -> None:
        self.events += 1
        if data.strip() == "[DONE]":
            self.finished = True
            return
        payload = _json(data)
        if not isinstance(payload, dict):
            self.error = self.error or f"unparseable stream event: {data[:200]}"
            return
        try:
            self._handle(event or payload.get("type", ""), payload)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            self.error = self.error or f"unexpected stream event ({type(exc).__name__}): {data[:200]}"

    def result(self) -> dict:
        for event, data in self._decoder.close():
            self._dispatch(event, data)
        return {"openai_chat": self._chat_result, "anthropic": self._anthropic_result,
                "openai_responses": self._responses_result}[self.protocol]()

    # -- OpenAI Chat Completions -------------------------------------------------------------------

    def _chat(self, event: str, chunk: dict) -> None:
        if "error" in chunk and "choices" not in chunk:
            self.error = _message_of(chunk)
            return
        for key in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if chunk.get(key) is not None:
                self._chat_head[key] = chunk[key]
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            slot = self._choices.setdefault(choice.get("index", 0), {"message": {"role": "assistant"},
                                                                      "finish_reason": None, "calls": {}})
            delta = choice.get("delta") or {}
            message = slot["message"]
            if delta.get("role"):
                message["role"] = delta["role"]
            for key in ("content", "reasoning_content", "refusal"):
                if delta.get(key):
                    message[key] = message.get(key, "") + delta[key]
            for call in delta.get("tool_calls") or []:
                acc = slot["calls"].setdefault(call.get("index", 0),
                                               {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
                if call.get("id"):
                    acc["id"] = call["id"]
                if call.get("type"):
                    acc["type"] = call["type"]
                fn = call.get("function") or {}
                acc["function"]["name"] += fn.get("name") or ""
                acc["function"]["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                slot["finish_reason"] = choice["finish_reason"]

    def _chat_result(self) -> dict:
        choices = []
        for index in sorted(self._choices):
            slot = self._choices[index]
            message = {"role": slot["message"]["role"], "content": slot["message"].get("content")}
            for key in ("reasoning_content", "refusal"):
                if key in slot["message"]:
                    message[key] = slot["message"][key]
            if slot["calls"]:
                message["tool_calls"] = [slot["calls"][i] for i in sorted(slot["calls"])]
            choices.append({"index": index, "message": message, "finish_reason": slot["finish_reason"]})
        body = {"object": "chat.completion", **self._chat_head, "choices": choices}
        if self._usage is not None:
            body["usage"] = self._usage
        return body

    # -- Anthropic Messages ------------------------------------------------------------------------

    def _anthropic(self, event: str, data: dict) -> None:
        kind = data.get("type", event)
        if kind == "message_start":
            self._message = dict(data["message"])
            self._message["usage"] = dict(self._message.get("usage") or {})
        elif kind == "content_block_start":
            block = dict(data["content_block"])
            self._blocks[data["index"]] = block
            if block.get("type") in ("tool_use", "server_tool_use"):
                self._partial[data["index"]] = ""
        elif kind == "content_block_delta":
            block, delta = self._blocks[data["index"]], data["delta"]
            dtype = delta.get("type")
            if dtype == "text_delta":
                block["text"] = block.get("text", "") + delta["text"]
            elif dtype == "input_json_delta":
                self._partial[data["index"]] = self._partial.get(data["index"], "") + delta["partial_json"]
            elif dtype == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta["thinking"]
            elif dtype == "signature_delta":
                block["signature"] = delta["signature"]
            elif dtype == "citations_delta":
                block.setdefault("citations", []).append(delta["citation"])
        elif kind == "content_block_stop":
            self._close_block(data["index"])
        elif kind == "message_delta":
            self._message.update(data.get("delta") or {})
            self._message.setdefault("usage", {}).update(
                {k: v for k, v in (data.get("usage") or {}).items() if v is not None})
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            self.error = _message_of(data)

    def _close_block(self, index: int) -> None:
        if index in self._partial:
            text = self._partial.pop(index)
            parsed = _json(text) if text.strip() else {}
            # Keep malformed tool input visible rather than dropping it.
            self._blocks[index]["input"] = parsed if isinstance(parsed, dict) else {"_partial_json": text}

    def _anthropic_result(self) -> dict:
        for index in list(self._partial):  # stream stopped inside a tool_use block
            self._close_block(index)
        message = dict(self._message) or {"type": "message", "role": "assistant"}
        message["content"] = [self._blocks[i] for i in sorted(self._blocks)]
        return message

    # -- OpenAI Responses --------------------------------------------------------------------------

    def _responses(self, event: str, data: dict) -> None:
        kind = data.get("type", event)
        if kind in ("response.created", "response.in_progress", "response.completed", "response.failed",
                    "response.incomplete"):
            self._response = dict(data["response"])
            if kind != "response.created" and kind != "response.in_progress":
                self.finished = True
            if kind == "response.failed":
                self.error = _message_of(self._response) or "response.failed"
        elif kind == "response.output_item.added" or kind == "response.output_item.done":
            self._items[data["output_index"]] = dict(data["item"])
        elif kind == "response.content_part.added":
            item = self._items[data["output_index"]]
            item.setdefault("content", []).append(dict(data["part"]))
        elif kind == "response.output_text.delta":
            item = self._items[data["output_index"]]
            parts = item.setdefault("content", [])
            while len(parts) <= data.get("content_index", 0):
                parts.append({"type": "output_text", "text": "", "annotations": []})
            part = parts[data.get("content_index", 0)]
            part["text"] = part.get("text", "") + data["delta"]
        elif kind == "response.function_call_arguments.delta":
            item = self._items[data["output_index"]]
            item["arguments"] = item.get("arguments", "") + data["delta"]
        elif kind == "error":
            self.error = _message_of(data)

    def _responses_result(self) -> dict:
        response = dict(self._response) or {"object": "response"}
        if not response.get("output") and self._items:
            response["output"] = [self._items[i] for i in sorted(self._items)]
        return response


def _message_of(body: dict) -> str:
    err = body.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or err)[:2000]
    if err:
        return str(err)[:2000]
    return str(body.get("message") or "")[:2000]
