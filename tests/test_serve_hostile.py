"""A real ``tagtune serve`` process on 127.0.0.1 under 1,000 hostile and 1,000 valid requests, interleaved.

Hostile: malformed JSON, wrong types, extra fields (paths), oversized bodies with and without a
Content-Length, too many or too long texts, invalid Unicode, wrong content types and methods, unknown
routes and path traversal, missing or wrong API keys. Each must get a 4xx with a JSON error; valid
requests, batched together with them, must get exactly what the in-process Tagger answers. At the end
the process is alive, its memory has not grown beyond a bound, and it shuts down cleanly.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import tagtune
from conftest import WORDS, stop_server, wait_until_healthy

pytestmark = [pytest.mark.load,
              pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")]

KEY = "test-key-3b1f"
MAX_TEXTS, MAX_CHARS, MAX_BODY = 8, 2000, 20_000
N_HOSTILE = N_VALID = 1000
RSS_GROWTH_LIMIT_MB = 64


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4/IPv6 addresses in LISTEN state on ``port``, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            address, state = fields[1], fields[3]
            ip, port_hex = address.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                found.add(ip)
    return found


def _texts(rng: random.Random) -> list[str]:
    """Texts for valid requests, ordinary and odd (still valid)."""
    pool = []
    for _ in range(60):
        words = [rng.choice(WORDS) for _ in range(rng.randint(1, 30))]
        words = [w.capitalize() if rng.random() < 0.3 else w for w in words]
        pool.append(" ".join(words) + rng.choice(["", ".", " !", "?"]))
    pool += ["", "   \n\t ", "a\x00b \u200b\ufeff", "Angela Merkel visited Paris.",
             "👍🏽 Angela \U0010ffff Merkel", "../../etc/passwd", "/etc/shadow; rm -rf /",
             "{\"text\": \"nested\"}", "ü" * MAX_CHARS,
             " ".join(["paris"] * 400)[:MAX_CHARS], "x" * MAX_CHARS]
    return pool


def _valid_requests(rng: random.Random, pool: list[str]) -> list[dict]:
    requests = []
    for i in range(N_VALID):
        if i % 2:
            requests.append({"kind": "valid", "json": {"text": rng.choice(pool)}})
        else:
            texts = [rng.choice(pool) for _ in range(rng.randint(0, MAX_TEXTS))]
            requests.append({"kind": "valid", "json": {"texts": texts}})
    return requests


def _hostile_kinds() -> list[tuple[str, dict, set[int]]]:
    """(name, request, acceptable statuses)."""
    big = "a" * (MAX_BODY + 1)
    json_headers = {"content-type": "application/json"}

    def chunks():
        for _ in range(30):
            yield b"x" * 1000

    return [
        ("invalid JSON", {"content": b'{"text": "a",', "headers": json_headers}, {400, 422}),
        ("not JSON at all", {"content": b"hello", "headers": json_headers}, {400, 422}),
        ("empty body", {"content": b"", "headers": json_headers}, {422}),
        ("JSON list", {"json": ["a", "b"]}, {422}),
        ("JSON string", {"json": "a"}, {422}),
        ("JSON null", {"content": b"null", "headers": json_headers}, {422}),
        ("text is a number", {"json": {"text": 5}}, {422}),
        ("text is a list", {"json": {"text": ["a"]}}, {422}),
        ("texts is a string", {"json": {"texts": "abc"}}, {422}),
        ("texts hold numbers", {"json": {"texts": [1, 2]}}, {422}),
        ("texts hold objects", {"json": {"texts": [{"text": "a"}]}}, {422}),
        ("both text and texts", {"json": {"text": "a", "texts": ["b"]}}, {422}),
        ("neither", {"json": {}}, {422}),
        ("a file path field", {"json": {"text": "a", "path": "/etc/passwd"}}, {422}),
        ("a model path field", {"json": {"text": "a", "model": "../../secret"}}, {422}),
        ("NaN", {"content": b'{"text": NaN}', "headers": json_headers}, {422}),
        ("huge number", {"content": b'{"text": ' + b"9" * 5000 + b"}", "headers": json_headers}, {400, 422}),
        ("invalid UTF-8", {"content": b'{"text": "\xff\xfe"}', "headers": json_headers}, {400, 422}),
        ("lone surrogate", {"content": b'{"text": "a \\ud800 b"}', "headers": json_headers}, {422}),
        ("lone surrogate in a list", {"content": b'{"texts": ["ok", "\\udfff"]}', "headers": json_headers},
         {422}),
        ("too many texts", {"json": {"texts": ["a"] * (MAX_TEXTS + 1)}}, {413}),
        ("text too long", {"json": {"text": "a" * (MAX_CHARS + 1)}}, {413}),
        ("body too large", {"json": {"text": big}}, {413}),
        ("chunked body too large", {"content": chunks, "headers": json_headers}, {413}),
        ("deep nesting", {"content": b"[" * 5000 + b"]" * 5000, "headers": json_headers}, {400, 413, 422}),
        ("text/plain", {"content": b'{"text": "a"}', "headers": {"content-type": "text/plain"}}, {415, 422}),
        ("form data", {"data": {"text": "a"}}, {415, 422}),
        ("no API key", {"json": {"text": "a"}, "no_key": True}, {401}),
        ("wrong API key", {"json": {"text": "a"}, "key": "wrong"}, {401}),
        ("GET /predict", {"method": "GET"}, {405}),
        ("PUT /predict", {"method": "PUT", "json": {"text": "a"}}, {405}),
        ("DELETE /predict", {"method": "DELETE"}, {405}),
        ("unknown route", {"path": "/admin"}, {404, 405}),
        ("path traversal", {"method": "GET", "path": "/../../etc/passwd"}, {404}),
        ("encoded traversal", {"method": "GET", "path": "/static/..%2f..%2fetc%2fpasswd"}, {404}),
        ("file query", {"method": "GET", "path": "/predict?file=/etc/passwd"}, {405}),
    ]


def _hostile_requests() -> list[dict]:
    kinds = _hostile_kinds()
    return [{"kind": "hostile", "name": kinds[i % len(kinds)][0], "spec": kinds[i % len(kinds)][1],
             "expected": kinds[i % len(kinds)][2]} for i in range(N_HOSTILE)]


def _send(client: httpx.Client, request: dict) -> httpx.Response:
    if request["kind"] == "valid":
        return client.post("/predict", json=request["json"], headers={"X-API-Key": KEY})
    spec = dict(request["spec"])
    method, path = spec.pop("method", "POST"), spec.pop("path", "/predict")
    headers = dict(spec.pop("headers", {}))
    if not spec.pop("no_key", False):
        headers["X-API-Key"] = spec.pop("key", KEY)
    content = spec.pop("content", None)
    if callable(content):
        content = content()  # a fresh generator: sent chunked, without a Content-Length
    return client.request(method, path, headers=headers, content=content, **spec)


@pytest.fixture(scope="module")
def tagger(tiny_ner_dir):
    return tagtune.load(tiny_ner_dir, precision="fp32")


def test_1000_hostile_and_1000_valid_requests(tiny_ner_dir: Path, tagger, tmp_path: Path) -> None:
    rng = random.Random(9)
    pool = _texts(rng)
    expected = {text: [e.as_dict() for e in tagger(text)] for text in pool}
    requests = _valid_requests(rng, pool) + _hostile_requests()
    rng.shuffle(requests)

    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", "from tagtune.cli import main; main()", "serve", str(tiny_ner_dir),
         "--port", str(port), "--precision", "fp32", "--log_level", "warning", "--max_texts", str(MAX_TEXTS),
         "--max_chars", str(MAX_CHARS), "--max_body_bytes", str(MAX_BODY)],
        env={**os.environ, "TAGTUNE_API_KEY": KEY, "TOKENIZERS_PARALLELISM": "false"}, stdout=log,
        stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(process, base, 90, (tmp_path / "serve.log").read_text)
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only

        failures: list[str] = []
        counts = {"valid": 0, "hostile": 0}
        with httpx.Client(base_url=base, timeout=60) as client:
            warmup = [r for r in requests if r["kind"] == "valid"][:100]
            for request in warmup:
                _send(client, request)
            rss_start = _rss_mb(process.pid)

            def check(request: dict) -> None:
                response = _send(client, request)
                status = response.status_code
                if request["kind"] == "hostile":
                    body = response.json()
                    if status not in request["expected"] or body.get("error", {}).get("status") != status:
                        failures.append(f"{request['name']}: {status} {response.text[:200]}")
                    return
                if status != 200:
                    failures.append(f"valid {request['json']!r:.100}: {status} {response.text[:200]}")
                    return
                body = response.json()
                texts = [request["json"]["text"]] if "text" in request["json"] else request["json"]["texts"]
                single = "text" in request["json"]
                got = [body["entities"]] if single else [r["entities"] for r in body["results"]]
                for text, entities in zip(texts, got, strict=True):
                    if not _same(entities, expected[text]):
                        failures.append(f"valid {text!r:.60}: {entities} != {expected[text]}")

            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=6) as pool_:
                for request in requests:
                    counts[request["kind"]] += 1
                list(pool_.map(check, requests))
            elapsed = time.monotonic() - started
            rss_end = _rss_mb(process.pid)
            assert client.get("/health").status_code == 200
        assert counts == {"valid": N_VALID, "hostile": N_HOSTILE}
        assert not failures, f"{len(failures)} failures, first: {failures[:5]}"
        assert process.poll() is None
        assert rss_end - rss_start < RSS_GROWTH_LIMIT_MB, (rss_start, rss_end)
        print(f"2000 requests in {elapsed:.1f} s; server RSS {rss_start:.0f} -> {rss_end:.0f} MB")
    finally:
        try:
            stop_server(process)
        finally:
            log.close()
    output = (tmp_path / "serve.log").read_text()
    assert process.returncode == 0, output[-3000:]
    assert "Traceback" not in output and "prediction failed" not in output, output[-3000:]


def _same(got: list[dict], want: list[dict]) -> bool:
    """Equal entities; scores may differ in the last digits when texts are batched differently."""
    if len(got) != len(want):
        return False
    for a, b in zip(got, want):
        if {k: v for k, v in a.items() if k != "score"} != {k: v for k, v in b.items() if k != "score"}:
            return False
        if abs(a["score"] - b["score"]) > 1e-3:
            return False
    return True


def test_hostile_kinds_are_distinct_and_many() -> None:
    names = [name for name, _, _ in _hostile_kinds()]
    assert len(set(names)) == len(names) >= 30
