"""Serving throughput, latency and time to first token: ``dialogft_serve`` vs ``transformers serve``.

Each level sends the same ``--requests`` streamed chat completions from that many client
threads (each thread: one request at a time), then prints one table row: requests/s,
generated tokens/s, p50 and p99 latency (request to the stream's end), p50 and p99 time to
first token (request to the first content chunk), errors, and, for ours, the mean batch size
the server reports in ``/metrics``. Every request asks for ``max_tokens`` = ``--reply-tokens``
on a random-init model that does not end earlier, so every reply is the same work.

    python bench/serving.py --start                       # ours and transformers serve, 1 and 16 clients
    python bench/serving.py --start --servers ours        # ours alone
    python bench/serving.py --start --servers ours ours-micro transformers  # and ours micro-batching
    parlai dialogft_serve -mf /tmp/m/model --port 8080 &  # or a server of your own:
    python bench/serving.py --url http://127.0.0.1:8080 --concurrency 1 4 16 32 --requests 128

``--start`` builds a random-init GPT-2-shaped model (6 layers, width 512, 8k tokens: 20M
parameters), saves it as a ParlAI model file and exports it with ``parlai dialogft_export``
(a ``save_pretrained`` folder with the chat template that writes the context as the agent
does). Then, one server at a time on a free loopback port with ``--server-threads`` torch
threads: ``parlai dialogft_serve -mf MODEL`` (greedy; continuous batching, or micro-batches
with ``ours-micro``), and ``transformers
serve EXPORT --continuous-batching --device cpu`` (greedy, from the export's generation
config; continuous batching with paged attention runs on CPU in transformers 5). Each is
warmed up with one round of requests at the highest concurrency (transformers' continuous
batching takes tens of seconds to answer its first request), measured, and stopped. Both
answer a fixed prompt first: the script says whether their replies are the same text (the
same model and decoding; ours is stripped, as ParlAI strips replies).

A level with any failed request, or a server that cannot be reached, makes the script exit
1: a figure of errors is not a figure. Loopback only unless ``--allow-remote``; run it alone
(on two cores, anything else distorts the figures). The client side is standard library only.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, List, Optional, Tuple

WORDS = ("hello table hotel train thanks book cheap centre seven two help restaurant ticket "
         "today need find which sure like would can").split()


def headers_for(key: Optional[str]) -> Dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def post(url: str, body: dict, key: Optional[str], timeout: float) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers_for(key), method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def stream(url: str, body: dict, key: Optional[str], timeout: float) -> Tuple[float, float, int, str]:
    """One streamed completion: (seconds to first content chunk, seconds to the end, completion
    tokens from ``usage``, text). Raises ValueError when the stream reports an error or no usage."""
    body = dict(body, stream=True, stream_options={"include_usage": True})
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers_for(key), method="POST")
    start = time.perf_counter()
    first, tokens, text = None, None, []
    with urllib.request.urlopen(request, timeout=timeout) as response:
        for raw in response:
            line = raw.decode("utf-8").strip()
            if not line.startswith("data:"):
                continue
            data = line[len("data:"):].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if chunk.get("error"):
                raise ValueError(f"error event: {chunk['error']}")
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    first = first if first is not None else time.perf_counter() - start
                    text.append(piece)
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    end = time.perf_counter() - start
    if tokens is None:
        raise ValueError("the stream carried no usage")
    return (first if first is not None else end), end, tokens, "".join(text)


def scrape(base: str) -> Dict[str, float]:
    """The batch-size histogram's sum and count from /metrics (0 when unavailable: not ours)."""
    out = {"dialogft_batch_size_sum": 0.0, "dialogft_batch_size_count": 0.0}
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
            for line in response.read().decode().splitlines():
                name, _, value = line.partition(" ")
                if name in out:
                    out[name] = float(value)
    except (OSError, ValueError):
        pass
    return out


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")


def prompt(i: int) -> str:
    return f"request {i} : {WORDS[i % len(WORDS)]} {WORDS[(i * 7) % len(WORDS)]}"


def run_level(base: str, model: Optional[str], key: Optional[str], concurrency: int, requests: int,
              reply_tokens: int, timeout: float) -> dict:
    url = base + "/v1/chat/completions"
    latencies: List[float] = []
    firsts: List[float] = []
    tokens = [0]
    errors: List[str] = []
    lock = threading.Lock()
    next_index = [0]

    def client() -> None:
        while True:
            with lock:
                if next_index[0] >= requests:
                    return
                i = next_index[0]
                next_index[0] += 1
            body = {"messages": [{"role": "user", "content": prompt(i)}], "max_tokens": reply_tokens}
            if model:
                body["model"] = model
            try:
                first, end, generated, _text = stream(url, body, key, timeout)
            except (OSError, ValueError) as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                latencies.append(end)
                firsts.append(first)
                tokens[0] += generated

    before = scrape(base)
    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    after = scrape(base)
    batches = after["dialogft_batch_size_count"] - before["dialogft_batch_size_count"]
    served = after["dialogft_batch_size_sum"] - before["dialogft_batch_size_sum"]
    if errors:
        print(f"  {len(errors)} failed at concurrency {concurrency}, e.g. {errors[0]}", flush=True)
    return {
        "concurrency": concurrency, "requests": requests, "errors": len(errors), "wall_s": wall,
        "req_per_s": len(latencies) / wall, "tok_per_s": tokens[0] / wall,
        "tokens_per_reply": tokens[0] / len(latencies) if latencies else float("nan"),
        "p50_ms": 1000 * percentile(latencies, 0.5), "p99_ms": 1000 * percentile(latencies, 0.99),
        "ttft50_ms": 1000 * percentile(firsts, 0.5), "ttft99_ms": 1000 * percentile(firsts, 0.99),
        "mean_batch": served / batches if batches else float("nan"),
    }


def check_loopback(base: str) -> None:
    host = urllib.parse.urlsplit(base).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"{host} is not a loopback address; pass --allow-remote to load a remote server")


def wait_ready(base: str, health: str, proc, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with status {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(base + health, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"{name} did not answer {base}{health} within {timeout:.0f} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_model(folder: str, threads: int) -> Tuple[str, str]:
    """A random-init GPT-2-shaped model as a ParlAI model file and as its export: (-mf path, export folder)."""
    from parlai.core.agents import create_agent
    from parlai.core.params import ParlaiParser

    from parlai_dialogft.model.tiny import build_tiny_model

    texts = [f"hello {i} how can I help you with booking {WORDS[i % len(WORDS)]}" for i in range(2000)]
    hf = build_tiny_model(os.path.join(folder, "hf"), "gpt2", texts, vocab_size=8000, d_model=512, layers=6)
    model_file = os.path.join(folder, "model", "model")
    os.makedirs(os.path.dirname(model_file))
    opt = ParlaiParser(True, True).parse_kwargs(model="dialogft_agent", hf_model=hf, model_file=model_file,
                                                datapath=os.path.join(folder, "data"))
    create_agent(opt, requireModelExists=False).save(model_file)  # untrained: the same weights on both sides
    export = os.path.join(folder, "export")
    subprocess.run([sys.executable, "-m", "parlai", "dialogft_export", "-mf", model_file, "--out", export],
                   check=True, env=server_env(threads), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return model_file, export


def server_env(threads: int) -> Dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1")


def start_ours(model_file: str, reply_tokens: int, threads: int, log,
               batching: str = "continuous") -> Tuple[str, str, Optional[str], object]:
    """(base URL, health path, model field, process) of ``parlai dialogft_serve`` on the model."""
    port = free_port()
    command = [sys.executable, "-m", "parlai", "dialogft_serve", "-mf", model_file, "--port", str(port),
               "--inference", "greedy", "--label-truncate", str(reply_tokens + 8), "--serve-batching", batching]
    proc = subprocess.Popen(command, env=server_env(threads), stdout=log, stderr=subprocess.STDOUT)
    return f"http://127.0.0.1:{port}", "/healthz", None, proc


def start_transformers(export: str, threads: int, continuous: bool, log) -> Tuple[str, str, Optional[str], object]:
    """``transformers serve EXPORT`` (continuous batching unless ``continuous`` is False) on CPU."""
    executable = shutil.which("transformers", path=os.path.dirname(sys.executable)) or shutil.which("transformers")
    if executable is None:
        raise SystemExit("the `transformers` command is not installed (pip install 'transformers[serving]')")
    port = free_port()
    command = [executable, "serve", export, "--device", "cpu", "--host", "127.0.0.1", "--port", str(port),
               "--continuous-batching" if continuous else "--no-continuous-batching"]
    proc = subprocess.Popen(command, env=server_env(threads), stdout=log, stderr=subprocess.STDOUT)
    return f"http://127.0.0.1:{port}", "/health", export, proc


def measure(name: str, base: str, model: Optional[str], args) -> Tuple[List[dict], str]:
    """Warm-up, a fixed prompt's reply (to compare the servers), then each level."""
    top = max(args.concurrency)
    warm = run_level(base, model, args.api_key, top, max(args.warmup, top), args.reply_tokens, args.timeout)
    if warm["errors"]:
        raise SystemExit(f"{name}: the warm-up failed; see the lines above")
    body = {"messages": [{"role": "user", "content": prompt(0)}], "max_tokens": args.reply_tokens}
    if model:
        body["model"] = model
    text = stream(base + "/v1/chat/completions", body, args.api_key, args.timeout)[3]
    rows = []
    for concurrency in args.concurrency:
        row = run_level(base, model, args.api_key, concurrency, args.requests, args.reply_tokens, args.timeout)
        rows.append(dict(row, server=name))
        print(f"  {name}: {concurrency} clients done ({row['req_per_s']:.1f} req/s)", flush=True)
    return rows, text


def stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def print_table(rows: List[dict]) -> None:
    print("| server | clients | requests | errors | req/s | tokens/s | tokens/reply | p50 ms | p99 ms "
          "| TTFT p50 ms | TTFT p99 ms | mean batch |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        batch = "" if r["mean_batch"] != r["mean_batch"] else f"{r['mean_batch']:.1f}"  # NaN: not reported
        print(f"| {r['server']} | {r['concurrency']} | {r['requests']} | {r['errors']} | {r['req_per_s']:.1f} "
              f"| {r['tok_per_s']:.0f} | {r['tokens_per_reply']:.1f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} "
              f"| {r['ttft50_ms']:.0f} | {r['ttft99_ms']:.0f} | {batch} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the server's base URL (without --start)")
    parser.add_argument("--model", default=None, help="the 'model' field (default: the server's)")
    parser.add_argument("--api-key", default=None, help="sent as 'Authorization: Bearer KEY'")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--requests", type=int, default=64, help="requests per concurrency level")
    parser.add_argument("--warmup", type=int, default=16, help="requests sent first at the highest concurrency")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --url")
    parser.add_argument("--start", action="store_true",
                        help="build a model, start (and stop) each of --servers on it; ignores --url")
    parser.add_argument("--servers", nargs="+", choices=["ours", "ours-micro", "transformers"],
                        default=["ours", "transformers"],
                        help="with --start: which servers to measure, one after the other (ours-micro: "
                        "dialogft_serve --serve-batching micro)")
    parser.add_argument("--no-continuous-batching", action="store_true",
                        help="with --start: transformers serve without continuous batching")
    parser.add_argument("--reply-tokens", type=int, default=32, help="max_tokens of every request")
    parser.add_argument("--server-threads", type=int, default=2, help="with --start: the servers' torch threads")
    args = parser.parse_args()

    if not args.start:
        base = args.url.rstrip("/")
        if not args.allow_remote:
            check_loopback(base)
        try:
            urllib.request.urlopen(base + "/v1/models", timeout=10).close()
        except OSError as exc:
            raise SystemExit(f"no server answers at {base} ({exc}); start one, or pass --start")
        rows, _ = measure(base, base, args.model, args)
        print_table(rows)
        failed = sum(r["errors"] for r in rows)
        if failed:
            raise SystemExit(f"{failed} requests failed: these figures measure errors, not serving")
        return

    folder = tempfile.mkdtemp(prefix="bench_serving_")
    print(f"building the model in {folder}", flush=True)
    model_file, export = build_model(folder, args.server_threads)
    rows, replies = [], {}
    for name in args.servers:
        log = open(os.path.join(folder, f"{name}.log"), "w")
        if name.startswith("ours"):
            batching = "micro" if name == "ours-micro" else "continuous"
            label = "dialogft_serve" if batching == "continuous" else "dialogft_serve (micro)"
            base, health, model, proc = start_ours(model_file, args.reply_tokens, args.server_threads, log, batching)
        else:
            label = "transformers serve" + (" (no CB)" if args.no_continuous_batching else " (CB)")
            base, health, model, proc = start_transformers(export, args.server_threads,
                                                           not args.no_continuous_batching, log)
        try:
            wait_ready(base, health, proc, label, timeout=300)
            print(f"{label} on {base}, {args.server_threads} torch threads: warming up", flush=True)
            measured, replies[label] = measure(label, base, model, args)
            rows += measured
        finally:
            stop(proc)
            log.close()
    print(f"\nGPT-2 shape (20M), random init, max_tokens {args.reply_tokens}, {args.requests} streamed requests "
          f"per level, {args.server_threads} torch threads per server")
    print_table(rows)
    if len(replies) > 1:
        same = len({text.strip() for text in replies.values()}) == 1  # ours strips the reply, as ParlAI does
        print(f"\nthe servers' replies to one prompt are {'the same text' if same else 'DIFFERENT'} (ends stripped): "
              + " | ".join(f"{k}: {v[:60]!r}" for k, v in replies.items()))
    by = {(r["server"], r["concurrency"]): r for r in rows}
    top = max(args.concurrency)
    ours, peers = by.get(("dialogft_serve", top)), [r for r in rows if r["server"] != "dialogft_serve"
                                                     and r["concurrency"] == top]
    for peer in peers if ours else []:
        print(f"at {top} clients: dialogft_serve {ours['req_per_s'] / peer['req_per_s']:.2f}x the requests/s of "
              f"{peer['server']}, p99 {ours['p99_ms']:.0f} vs {peer['p99_ms']:.0f} ms, "
              f"TTFT p50 {ours['ttft50_ms']:.0f} vs {peer['ttft50_ms']:.0f} ms")
    shutil.rmtree(folder, ignore_errors=True)
    failed = sum(r["errors"] for r in rows)
    if failed:
        raise SystemExit(f"{failed} requests failed: these figures measure errors, not serving")


if __name__ == "__main__":
    main()
