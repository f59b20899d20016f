"""A bounded load test of ``tagtune serve`` on 127.0.0.1: throughput and latency at several concurrencies.

The script starts ``tagtune serve`` on a free loopback port (or uses ``--url``, which must be a
loopback address), sends a fixed number of ``POST /predict`` requests at each concurrency level
(default 1, 8 and 32 clients, each sending its next request when the previous one is answered), and
reports requests/s, texts/s, p50/p90/p99/max latency and failed requests per level. Texts are
CoNLL-2003 test sentences as plain text. It stops by itself: fixed request counts, a timeout per
request, and the server it started is shut down (SIGINT, graceful) at the end.

CLI::

    python benchmarks/load_test_serve.py --model benchmarks/out/minilm-conll --requests 300 \\
        --output benchmarks/out/load_test_serve.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "benchmarks" / "out" / "minilm-conll"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "conll2003" / "test.txt"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="model directory or ONNX export, or 'untrained'")
    parser.add_argument("--url", default=None, help="an already running service (loopback only)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--requests", type=int, default=300, help="requests per concurrency level")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--texts_per_request", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--serve_args", default="", help="extra arguments for tagtune serve, e.g. '--backend onnx'")
    parser.add_argument("--output", type=Path, default=None)
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, port: int, extra: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-c", "from tagtune.cli import main; main()", "serve", model, "--host", "127.0.0.1",
               "--port", str(port), "--log_level", "warning", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_ready(base: str, process: subprocess.Popen | None, timeout: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"the server exited: {process.stdout.read() if process.stdout else ''}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the server at {base} was not ready after {timeout:.0f}s")


async def run_level(base: str, texts: list[str], requests: int, concurrency: int, per_request: int,
                    timeout: float) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    failures: dict[str, int] = {}
    next_index = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:
        async def worker() -> None:
            nonlocal next_index
            while next_index < requests:
                i = next_index
                next_index += 1
                batch = [texts[(i * per_request + k) % len(texts)] for k in range(per_request)]
                body = {"text": batch[0]} if per_request == 1 else {"texts": batch}
                started = time.perf_counter()
                try:
                    response = await client.post("/predict", json=body)
                    ok = response.status_code == 200
                    reason = str(response.status_code)
                except httpx.HTTPError as error:
                    ok, reason = False, type(error).__name__
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    failures[reason] = failures.get(reason, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started

    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else float("nan")

    return {
        "concurrency": concurrency, "requests": requests, "texts_per_request": per_request,
        "failed": sum(failures.values()), "failures": failures, "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 1), "texts_per_s": round(len(latencies) * per_request / elapsed, 1),
        "latency_ms": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": pct(1.0),
                       "mean": round(1000 * statistics.fmean(ordered), 1) if ordered else float("nan")},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_predict import cpu_info, load_sentences, untrained_model

    texts = [" ".join(e.tokens) for e in load_sentences(args.data)]
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    process = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.url:
            host = urlsplit(args.url).hostname or ""
            if host not in LOOPBACK:
                raise SystemExit(f"--url must be a loopback address (127.0.0.1), not {host!r}")
            base = args.url.rstrip("/")
        else:
            model = str(untrained_model(Path(tmp) / "untrained")) if args.model == "untrained" else args.model
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            process = start_server(model, port, args.serve_args.split())
        try:
            wait_ready(base, process)
            import httpx

            metadata = httpx.get(f"{base}/metadata", timeout=10).json()
            asyncio.run(run_level(base, texts, 20, 4, args.texts_per_request, args.timeout))  # warm-up
            results = []
            for concurrency in levels:
                result = asyncio.run(run_level(base, texts, args.requests, concurrency, args.texts_per_request,
                                               args.timeout))
                print(json.dumps(result), file=sys.stderr)
                results.append(result)
        finally:
            exit_code = None
            if process is not None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                exit_code = process.returncode
    report = {"url": base, "model": args.model, "server": {k: metadata.get(k) for k in ("backend", "precision", "aggregation", "batch_size")},
              "device": cpu_info(), "levels": results, "server_exit_code": exit_code,
              "failed_total": sum(r["failed"] for r in results)}
    print(json.dumps(report, indent=2))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
