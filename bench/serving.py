"""Serving throughput and latency: concurrency 1 vs 16 against a running ``dialogft_serve``.

Each level sends the same ``--requests`` chat completions from that many client threads
(each thread: one request at a time), then prints one table row: requests/s, generated
tokens/s, p50 and p99 latency, errors, and the mean batch size the server reports in
``/metrics``. Micro-batching should make throughput grow with concurrency while latency
grows much less than the concurrency does.

    python bench/serving.py --start                                 # what `make bench` runs
    parlai dialogft_serve -mf /tmp/m/model --port 8080 &           # or a server of your own,
    python bench/serving.py --url http://127.0.0.1:8080             # concurrency 1 and 16
    python bench/serving.py --concurrency 1 4 16 32 --requests 128

``--start`` builds a random-init GPT-2-shaped model (6 layers, width 512, 8k tokens: 23M
parameters), starts ``parlai dialogft_serve`` on it on a free loopback port with every reply
exactly ``--reply-tokens`` long, measures, and stops it. For a server of your own, equal
reply lengths make the rows compare equal work: serve with ``--inference beam --beam-size 1
--beam-min-length N --label-truncate N``. A level with any failed request, or a server that
cannot be reached, makes the script exit 1: a figure of errors is not a figure. Loopback only
unless ``--allow-remote``; run it alone (on two cores, anything else distorts the figures).
The client side is standard library only.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import statistics
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, List, Optional

WORDS = ("hello table hotel train thanks book cheap centre seven two help restaurant ticket "
         "today need find which sure like would can").split()


def post(url: str, body: dict, key: Optional[str], timeout: float) -> dict:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def scrape(base: str) -> Dict[str, float]:
    """The batch-size histogram's sum and count from /metrics (0 when unavailable)."""
    out = {"dialogft_batch_size_sum": 0.0, "dialogft_batch_size_count": 0.0}
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
            for line in response.read().decode().splitlines():
                name, _, value = line.partition(" ")
                if name in out:
                    out[name] = float(value)
    except OSError:
        pass
    return out


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run_level(base: str, model: Optional[str], key: Optional[str], concurrency: int, requests: int,
              timeout: float) -> dict:
    url = base + "/v1/chat/completions"
    latencies: List[float] = []
    tokens = [0]
    errors = [0]
    lock = threading.Lock()
    next_index = [0]

    def client() -> None:
        while True:
            with lock:
                if next_index[0] >= requests:
                    return
                i = next_index[0]
                next_index[0] += 1
            text = f"request {i} : {WORDS[i % len(WORDS)]} {WORDS[(i * 7) % len(WORDS)]}"
            body = {"messages": [{"role": "user", "content": text}]}
            if model:
                body["model"] = model
            start = time.perf_counter()
            try:
                reply = post(url, body, key, timeout)
            except (OSError, ValueError):
                with lock:
                    errors[0] += 1
                continue
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                tokens[0] += reply["usage"]["completion_tokens"]

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
    return {
        "concurrency": concurrency, "requests": requests, "errors": errors[0], "wall_s": wall,
        "req_per_s": len(latencies) / wall, "tok_per_s": tokens[0] / wall,
        "p50_ms": 1000 * percentile(latencies, 0.5) if latencies else float("nan"),
        "p99_ms": 1000 * percentile(latencies, 0.99) if latencies else float("nan"),
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


def wait_ready(base: str, proc, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"dialogft_serve exited with status {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"dialogft_serve did not answer {base}/healthz within {timeout:.0f} s")


def start_server(reply_tokens: int, threads: int):
    """A random-init GPT-2-shaped model served by ``parlai dialogft_serve``: (base URL, process)."""
    import os
    import socket
    import subprocess
    import sys
    import tempfile

    from parlai_dialogft.model.tiny import build_tiny_model

    folder = tempfile.mkdtemp(prefix="bench_serving_")
    texts = [f"hello {i} how can I help you with booking {WORDS[i % len(WORDS)]}" for i in range(2000)]
    build_tiny_model(folder, "gpt2", texts, vocab_size=8000, d_model=512, layers=6)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1")
    command = [sys.executable, "-m", "parlai", "dialogft_serve", "-m", "dialogft_agent", "--hf-model", folder,
               "--port", str(port), "--inference", "beam", "--beam-size", "1",
               "--beam-min-length", str(reply_tokens), "--label-truncate", str(reply_tokens)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return f"http://127.0.0.1:{port}", proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the server's base URL")
    parser.add_argument("--model", default=None, help="the 'model' field (default: the server's)")
    parser.add_argument("--api-key", default=None, help="sent as 'Authorization: Bearer KEY'")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--requests", type=int, default=64, help="requests per concurrency level")
    parser.add_argument("--warmup", type=int, default=4, help="requests sent first, not measured")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --url")
    parser.add_argument("--start", action="store_true", help="start (and stop) a server on a built model; ignores --url")
    parser.add_argument("--reply-tokens", type=int, default=32, help="with --start: tokens in every reply")
    parser.add_argument("--server-threads", type=int, default=2, help="with --start: the server's torch threads")
    args = parser.parse_args()
    proc = None
    if args.start:
        base, proc = start_server(args.reply_tokens, args.server_threads)
    else:
        base = args.url.rstrip("/")
        if not args.allow_remote:
            check_loopback(base)
    try:
        if proc is not None:
            wait_ready(base, proc, timeout=300)
            print(f"dialogft_serve on {base}: GPT-2 shape, {args.reply_tokens} tokens per reply, "
                  f"{args.server_threads} torch threads", flush=True)
        else:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=10).close()
            except OSError as exc:
                raise SystemExit(f"no server answers at {base} ({exc}); start one, or pass --start")
        run_level(base, args.model, args.api_key, 1, args.warmup, args.timeout)
        rows = [run_level(base, args.model, args.api_key, c, args.requests, args.timeout) for c in args.concurrency]
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
    print(f"{'clients':>7} {'requests':>8} {'errors':>6} {'req/s':>8} {'tokens/s':>9} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'mean batch':>10}")
    for r in rows:
        print(f"{r['concurrency']:>7} {r['requests']:>8} {r['errors']:>6} {r['req_per_s']:>8.1f} "
              f"{r['tok_per_s']:>9.0f} {r['p50_ms']:>8.0f} {r['p99_ms']:>8.0f} {r['mean_batch']:>10.1f}")
    if len(rows) > 1 and rows[0]["req_per_s"]:
        print(f"throughput x{rows[-1]['req_per_s'] / rows[0]['req_per_s']:.1f} from {rows[0]['concurrency']} "
              f"to {rows[-1]['concurrency']} clients")
    failed = sum(r["errors"] for r in rows)
    if failed:
        raise SystemExit(f"{failed} requests failed: these figures measure errors, not serving")


if __name__ == "__main__":
    main()
