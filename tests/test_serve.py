from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

import tagtune
from conftest import wait_until_healthy
from tagtune.serve import API_KEY_HEADER, MicroBatcher, ServeConfig, create_app

TEXT = "Angela Merkel visited Paris."


@pytest.fixture(scope="module")
def tagger(tiny_ner_dir):
    return tagtune.load(tiny_ner_dir, precision="fp32")


@pytest.fixture()
def client(tagger):
    config = ServeConfig(max_texts=3, max_chars=60, max_body_bytes=4000)
    with TestClient(create_app(tagger, config)) as test_client:
        yield test_client


def _entities(tagger, text: str) -> list[dict]:
    return [e.as_dict() for e in tagger(text)]


def test_predict_one_text_and_a_list(client, tagger) -> None:
    response = client.post("/predict", json={"text": TEXT})
    assert response.status_code == 200
    assert response.json() == {"entities": _entities(tagger, TEXT)}
    response = client.post("/predict", json={"texts": [TEXT, "", "paris"]})
    assert response.status_code == 200
    assert response.json() == {"results": [{"entities": _entities(tagger, t)} for t in (TEXT, "", "paris")]}
    assert client.post("/predict", json={"texts": []}).json() == {"results": []}


def test_health_metadata_and_docs(client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    metadata = client.get("/metadata").json()
    assert metadata["labels"][0] == "O" and metadata["backend"] == "torch" and metadata["precision"] == "fp32"
    assert metadata["limits"] == {"max_body_bytes": 4000, "max_texts": 3, "max_chars": 60}
    assert "/" not in metadata["model"]  # no filesystem paths
    assert set(client.get("/openapi.json").json()["paths"]) == {"/predict", "/health", "/metadata"}


@pytest.mark.parametrize("body, status, message", [
    ({"texts": ["a"] * 4}, 413, "4 texts in one request; the limit is 3"),
    ({"text": "x" * 61}, 413, "text #0 has 61 characters; the limit is 60"),
    ({"text": "a", "texts": ["b"]}, 422, "exactly one of 'text'"),
    ({}, 422, "exactly one of 'text'"),
    ({"text": 3}, 422, "body.text: Input should be a valid string"),
    ({"texts": "not a list"}, 422, "body.texts"),
    ({"text": "a", "path": "/etc/passwd"}, 422, "body.path: Extra inputs are not permitted"),
])
def test_invalid_requests_get_a_json_error(client, body, status: int, message: str) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["status"] == status and message in error["message"]


def test_body_limit_with_and_without_content_length(client) -> None:
    big = json.dumps({"text": "a" * 5000}).encode()
    response = client.post("/predict", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "limit is 4000" in response.json()["error"]["message"]

    def chunks():
        yield b'{"text": "'
        for _ in range(50):
            yield b"a" * 100
        yield b'"}'

    response = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "exceeds the limit" in response.json()["error"]["message"]
    response = client.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and "JSON" in response.json()["error"]["message"]


def test_api_key(tagger) -> None:
    with TestClient(create_app(tagger, ServeConfig(api_key="s3cret"))) as client:
        assert client.get("/health").status_code == 200  # probes need no key
        for headers in ({}, {API_KEY_HEADER: "wrong"}):
            response = client.post("/predict", json={"text": TEXT}, headers=headers)
            assert response.status_code == 401 and "X-API-Key" in response.json()["error"]["message"]
            assert client.get("/metadata", headers=headers).status_code == 401
        assert client.post("/predict", json={"text": TEXT}, headers={API_KEY_HEADER: "s3cret"}).status_code == 200


def test_concurrent_requests_are_batched_and_routed_back() -> None:
    calls: list[list[str]] = []

    def slow_upper(texts: list[str]) -> list[str]:
        calls.append(list(texts))
        time.sleep(0.05)
        return [t.upper() for t in texts]

    async def main() -> list[list[str]]:
        batcher = MicroBatcher(slow_upper, max_texts=100)
        await batcher.start()
        results = await asyncio.gather(*(batcher.submit([f"t{i}", f"u{i}"]) for i in range(20)))
        await batcher.stop()
        return results

    results = asyncio.run(main())
    assert results == [[f"T{i}", f"U{i}"] for i in range(20)]
    assert len(calls) < 20  # requests waiting together went in one batch
    assert sorted(t for call in calls for t in call) == sorted([f"t{i}" for i in range(20)] + [f"u{i}" for i in range(20)])


def test_batcher_error_reaches_every_request_and_service_goes_on() -> None:
    def flaky(texts: list[str]) -> list[str]:
        if "boom" in texts:
            raise RuntimeError("boom")
        return texts

    async def main():
        batcher = MicroBatcher(flaky)
        await batcher.start()
        with pytest.raises(RuntimeError):
            await batcher.submit(["boom"])
        ok = await batcher.submit(["fine"])
        await batcher.stop()
        return ok

    assert asyncio.run(main()) == ["fine"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_uvicorn_process_on_loopback(tiny_ner_dir, tagger) -> None:
    port = _free_port()
    env = {**os.environ, "TAGTUNE_API_KEY": "k"}
    process = subprocess.Popen(
        [sys.executable, "-c", "from tagtune.cli import main; main()", "serve", str(tiny_ner_dir), "--port", str(port),
         "--precision", "fp32", "--log_level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(process, base, 60, lambda: process.stdout.read() if process.poll() is not None else "")  # type: ignore[union-attr]
        headers = {API_KEY_HEADER: "k"}
        assert httpx.post(f"{base}/predict", json={"text": TEXT}).status_code == 401
        results: dict[int, httpx.Response] = {}

        def call(i: int) -> None:
            results[i] = httpx.post(f"{base}/predict", json={"texts": [TEXT] * (i % 3 + 1)}, headers=headers, timeout=30)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        expected = {"entities": _entities(tagger, TEXT)}
        for i, response in results.items():
            assert response.status_code == 200
            assert response.json() == {"results": [expected] * (i % 3 + 1)}
        assert httpx.post(f"{base}/predict", json={"texts": ["a"] * 65}, headers=headers).status_code == 413
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, output


def test_stop_finishes_requests_already_accepted() -> None:
    def slow(texts: list[str]) -> list[str]:
        time.sleep(0.05)
        return texts

    async def main():
        batcher = MicroBatcher(slow, max_texts=2)
        await batcher.start()
        pending = [asyncio.create_task(batcher.submit([f"t{i}"])) for i in range(6)]
        await asyncio.sleep(0)  # the requests are queued
        await batcher.stop()
        return [task.result() for task in pending], batcher.batches

    results, batches = asyncio.run(main())
    assert results == [[f"t{i}"] for i in range(6)]
    assert batches >= 3  # at most 2 texts a batch
