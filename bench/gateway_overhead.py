"""What does the recording gateway add to a model call?

Starts a local upstream that answers instantly (uvicorn, a minimal OpenAI Chat Completions
server in its own process) and the gateway as it runs in production (`manage.py gateway`, its
own process, recording every call in the database DATABASE_URL points at — migrated, as for
manage.py; the bench's rows are deleted at the end). Then, from this process, the same calls
go to the upstream directly and through the gateway:

* sequential non-streaming calls: latency p50 / p99, and the added milliseconds;
* throughput: calls per second with --concurrency clients at once, and the ratio;
* streaming: time to first byte (the upstream sends its first event at once and the rest
  over --stream-ms), direct vs through the gateway — a buffering gateway would add the whole
  stream time.

With --memory-store a second gateway whose hooks are in memory (no database) is measured too,
which splits the added time between forwarding and recording.

    DATABASE_URL=postgres://... .venv/bin/python bench/gateway_overhead.py [--calls 400]
        [--concurrency 16] [--memory-store]

Target (issue 5): p50 added ≤ 5 ms; streaming first byte not delayed.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEY = "sk-bench-upstream-key"
COMPLETION = {
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "done"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55},
}


# -- child processes ----------------------------------------------------------------------------


def serve_upstream(port: int, stream_events: int, stream_ms: float) -> None:
    """An OpenAI Chat Completions server that answers at once (streams: first event at once)."""
    import uvicorn

    body = json.dumps(COMPLETION).encode()
    chunk = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": "bench-model"}
    events = [b"data: " + json.dumps({**chunk, "choices": [{"index": 0, "delta": {"content": f"w{i} "},
                                                             "finish_reason": None}]}).encode() + b"\n\n"
              for i in range(stream_events)]
    events.append(b"data: " + json.dumps({**chunk, "choices": [], "usage": COMPLETION["usage"]}).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    gap = stream_ms / 1000 / max(1, len(events) - 1)

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        request = b""
        while True:
            message = await receive()
            request += message.get("body", b"")
            if not message.get("more_body"):
                break
        if json.loads(request or b"{}").get("stream") is not True:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
            await send({"type": "http.response.body", "body": body})
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for i, event in enumerate(events):
            if i:
                await asyncio.sleep(gap)
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_memory_gateway(port: int, upstream_url: str) -> None:
    """The gateway's forwarding core with in-memory hooks: no database, same forwarding."""
    import uvicorn

    from episodes.solving.gateway.core import GatewayApp, Upstream

    upstream = Upstream("openai_chat", upstream_url, KEY, "bench-model", 3, 15, episode_id=1, endpoint_id=1)
    recorded = []

    async def resolve(token):
        return upstream if token == "bfgw_memory" else None

    async def record(call):
        recorded.append(call["status_code"])

    uvicorn.run(GatewayApp(resolve, record), host="127.0.0.1", port=port, log_level="warning", access_log=False,
                server_header=False)


# -- measuring ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, path: str = "/healthz") -> None:
    import httpx2 as httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"a server process exited early ({proc.returncode}); see its log")
        try:
            httpx.get(url + path, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def interleaved(targets: list[tuple[str, str, str]], calls: int, stream: bool) -> dict[str, tuple[list, list]]:
    """Per-call latency and time to first byte (ms) for each target, one call after another,
    the targets taking turns call by call so that all see the same machine load."""
    import httpx2 as httpx

    body = {"model": "agent-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    payload = json.dumps(body).encode()
    clients = {name: httpx.Client(base_url=url, timeout=30, headers={
        "authorization": f"Bearer {key}", "content-type": "application/json"}) for name, url, key in targets}
    results: dict[str, tuple[list, list]] = {name: ([], []) for name, _, _ in targets}
    try:
        for i in range(calls + 20):  # 20 warm-up rounds
            for name, client in clients.items():
                start = time.perf_counter()
                first = None
                with client.stream("POST", "/v1/chat/completions", content=payload) as answer:
                    for _ in answer.iter_raw():
                        if first is None:
                            first = time.perf_counter()
                    assert answer.status_code == 200, answer.status_code
                end = time.perf_counter()
                if i >= 20:
                    results[name][0].append((end - start) * 1000)
                    results[name][1].append((first - start) * 1000)
    finally:
        for client in clients.values():
            client.close()
    return results


def throughput(url: str, token: str, calls: int, concurrency: int) -> float:
    """Calls per second with ``concurrency`` clients calling at once (non-streaming)."""
    import httpx2 as httpx

    body = json.dumps({"model": "agent-model", "messages": [{"role": "user", "content": "hi"}]}).encode()
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    async def run() -> float:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as client:
            left = iter(range(calls))

            async def worker():
                for _ in left:
                    answer = await client.post("/v1/chat/completions", content=body)
                    assert answer.status_code == 200, answer.status_code

            await asyncio.gather(*(client.post("/v1/chat/completions", content=body) for _ in range(concurrency)))
            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return calls / (time.perf_counter() - start)

    return asyncio.run(run())


# -- the bench ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="sequential calls per target")
    parser.add_argument("--throughput-calls", type=int, default=800)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--stream-calls", type=int, default=100)
    parser.add_argument("--stream-events", type=int, default=10)
    parser.add_argument("--stream-ms", type=float, default=50, help="how long each upstream stream lasts")
    parser.add_argument("--memory-store", action="store_true", help="also measure a gateway without the database")
    parser.add_argument("--serve", choices=["upstream", "memory-gateway"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upstream-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "upstream":
        return serve_upstream(args.port, args.stream_events, args.stream_ms)
    if args.serve == "memory-gateway":
        return serve_memory_gateway(args.port, args.upstream_url)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bugforge_web.settings")
    import django

    django.setup()
    import logging

    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per bench request otherwise
    from django.db import connection

    from episodes.models import Bug, Episode, LLMCall, LLMEndpoint, Repository, Teacher

    logs = Path(tempfile.mkdtemp(prefix="bugforge-gw-bench-"))
    procs: list[subprocess.Popen] = []

    def spawn(name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(logs / f"{name}.log", "wb")
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    me = [sys.executable, str(Path(__file__).resolve())]
    up_port, gw_port, mem_port = free_port(), free_port(), free_port()
    upstream_url = f"http://127.0.0.1:{up_port}"
    tag = f"bench-gateway-{os.getpid()}"
    repo = Repository.objects.create(name=tag, source="/nowhere", pinned_commit="0" * 40)
    endpoint = LLMEndpoint.objects.create(name=tag, protocol="openai_chat", base_url=upstream_url,
                                          model="bench-model", api_key=KEY, usd_per_mtok_in=3, usd_per_mtok_out=15)
    teacher = Teacher.objects.create(name=tag, endpoint=endpoint)
    bug = Bug.objects.create(repository=repo, base_commit="0" * 40, patch="-", verifier="-")
    episode = Episode.objects.create(bug=bug, teacher=teacher, status="running")
    token = episode.issue_gateway_token()
    try:
        up = spawn("upstream", [*me, "--serve", "upstream", "--port", str(up_port)])
        wait_up(upstream_url, up, path="/")
        gw = spawn("gateway", [sys.executable, str(ROOT / "manage.py"), "gateway", "--port", str(gw_port),
                               "--log-level", "warning"])
        gateway_url = f"http://127.0.0.1:{gw_port}"
        wait_up(gateway_url, gw)
        targets = [("direct", upstream_url, KEY), ("gateway", gateway_url, token)]
        if args.memory_store:
            mem = spawn("memory-gateway", [*me, "--serve", "memory-gateway", "--port", str(mem_port),
                                           "--upstream-url", upstream_url])
            targets.append(("gateway (no database)", f"http://127.0.0.1:{mem_port}", "bfgw_memory"))
            wait_up(targets[-1][1], mem)

        load = os.getloadavg()[0]
        print(f"database: {connection.vendor}; {os.cpu_count()} CPUs, load average {load:.1f} at start; "
              f"upstream answers instantly (streams: {args.stream_events} events over {args.stream_ms:g} ms)\n")
        pids = {"direct": up.pid, "gateway": gw.pid}
        if args.memory_store:
            pids["gateway (no database)"] = mem.pid
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        seq = interleaved(targets, args.calls, stream=False)
        cpu_used = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        thr: dict[str, list[float]] = {name: [] for name, _, _ in targets}
        for _ in range(3):  # rounds in turn, the median is kept
            for name, url, key in targets:
                thr[name].append(throughput(url, key, args.throughput_calls // 3, args.concurrency))
        streams = interleaved(targets, args.stream_calls, stream=True)

        base = seq["direct"][0]
        print(f"sequential, non-streaming ({args.calls} calls each, targets taking turns)")
        print(f"  {'':24} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} {'added p99':>10} {'CPU ms/call':>12}")
        for name, (lat, _) in seq.items():
            # "direct": the upstream's own CPU per call; a gateway: its process's CPU per forwarded call.
            cpu = cpu_used[name] / (args.calls + 20) * 1000 / (len(targets) if name == "direct" else 1)
            print(f"  {name:24} {pct(lat, 50):8.2f} {pct(lat, 99):8.2f} "
                  f"{pct(lat, 50) - pct(base, 50):10.2f} {pct(lat, 99) - pct(base, 99):10.2f} {cpu:12.2f}")
        print("  (CPU ms/call: for 'direct' the upstream server's, for a gateway its own process's)")
        for name in list(seq)[1:]:
            paired = [g - d for g, d in zip(seq[name][0], base)]
            print(f"  {name}: added per call, paired with the direct call made just before it: "
                  f"p50 {pct(paired, 50):.2f} ms, p99 {pct(paired, 99):.2f} ms")
        print(f"\nthroughput, {args.concurrency} concurrent clients (median of 3 rounds of "
              f"{args.throughput_calls // 3} calls)")
        for name in thr:
            rate, direct_rate = statistics.median(thr[name]), statistics.median(thr["direct"])
            print(f"  {name:24} {rate:8.0f} calls/s   ratio vs direct {rate / direct_rate:.2f}")
        print(f"\nstreaming ({args.stream_calls} calls each): time to first byte and whole stream, ms")
        print(f"  {'':24} {'ttfb p50':>9} {'ttfb p99':>9} {'stream p50':>11} {'added ttfb p50':>15}")
        for name, (lat, first) in streams.items():
            print(f"  {name:24} {pct(first, 50):9.2f} {pct(first, 99):9.2f} {pct(lat, 50):11.2f} "
                  f"{pct(first, 50) - pct(streams['direct'][1], 50):15.2f}")

        added = pct([g - d for g, d in zip(seq["gateway"][0], base)], 50)
        ttfb_added = pct(streams["gateway"][1], 50) - pct(streams["direct"][1], 50)
        print(f"\np50 added by the gateway (paired): {added:.2f} ms (target ≤ 5 ms: {'met' if added <= 5 else 'NOT met'}); "
              f"latency ratio p50 {pct(seq['gateway'][0], 50) / pct(base, 50):.2f}; "
              f"first byte added {ttfb_added:.2f} ms of a {args.stream_ms:g} ms stream "
              f"({'not delayed' if ttfb_added < args.stream_ms / 2 else 'DELAYED'}); "
              f"load average now {os.getloadavg()[0]:.1f}")
        time.sleep(0.5)  # the last records land just after their answers
        stored = LLMCall.objects.filter(episode=episode).count()
        expected = args.calls + args.stream_calls + 40 + (args.throughput_calls // 3 + args.concurrency) * 3
        print(f"calls recorded by the gateway: {stored} of {expected}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        Episode.objects.filter(pk=episode.pk).delete()
        teacher.delete()
        endpoint.delete()
        repo.delete()
        print(f"(server logs in {logs})")


if __name__ == "__main__":
    main()
