"""The HTTP service around one :class:`~tagtune.predict.Tagger`: no model logic here.

``POST /predict`` takes ``{"text": "..."}`` or ``{"texts": ["...", ...]}`` and answers
``{"entities": [...]}`` or ``{"results": [{"entities": [...]}, ...]}``; ``GET /health`` and
``GET /metadata`` describe the service; OpenAPI docs are at ``/docs``. Requests waiting at the same
time are tagged together in one batch (:class:`MicroBatcher`), on one worker thread, so the event loop
stays free. Limits on body size, number of texts and characters per text are answered with 413, bad
requests with 422, a missing or wrong API key with 401, always as ``{"error": {"status", "message"}}``.
Requests carry text only: no paths, no options that touch files. ``GET /`` is a page to try the
model (``static/``: plain HTML, CSS and JavaScript, every asset served here). Entity scores, and which
entities are dropped or marked ``review`` below a minimum score, are the tagger's (``--min_score``,
``--review``, the model's ``calibration.json``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from tagtune.errors import ConfigError

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
API_KEY_ENV = "TAGTUNE_API_KEY"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
STATIC_DIR = Path(__file__).with_name("static")
# The page loads nothing from elsewhere and runs no inline code; the JSON download is a blob: link.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class ServeConfig:
    """How ``tagtune serve`` listens and what it accepts.

    Attributes:
        host: Interface to bind; loopback by default (put a reverse proxy in front to expose it).
        port: TCP port.
        max_body_bytes: Largest request body (413 beyond).
        max_texts: Most texts in one request (413 beyond).
        max_chars: Most characters in one text (413 beyond).
        max_batch_texts: Most texts tagged in one micro-batch across concurrent requests.
        max_concurrent: Most connections and requests handled at once (503 beyond); tagging itself
            runs on one worker thread.
        max_wait_ms: How long the first waiting request may wait for company (0: batch only what is
            already waiting, adding no latency).
        api_key: When set, ``/predict`` and ``/metadata`` need it in the ``X-API-Key`` header.
        graceful_seconds: On shutdown, how long running requests may take to finish.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1_000_000
    max_texts: int = 64
    max_chars: int = 100_000
    max_batch_texts: int = 128
    max_concurrent: int = 64
    max_wait_ms: float = 0.0
    api_key: str | None = field(default=None, repr=False)
    graceful_seconds: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_texts", "max_chars", "max_batch_texts", "max_concurrent"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port} is not a TCP port (0..65535)")
        if self.max_wait_ms < 0:
            raise ConfigError(f"--max_wait_ms must be >= 0, got {self.max_wait_ms}")

    def limits(self) -> dict[str, int]:
        return {"max_body_bytes": self.max_body_bytes, "max_texts": self.max_texts, "max_chars": self.max_chars}


class PredictRequest(BaseModel):
    """One text or a list of texts (not both)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"text": "Angela Merkel visited Paris."}, {"texts": ["EU rejects German call.", "Hi"]}]})
    text: str | None = Field(None, description="One text.")
    texts: list[str] | None = Field(None, description="Several texts, tagged independently.")


class EntityOut(BaseModel):
    start: int = Field(description="Character offset of the first character (Python string index).")
    end: int = Field(description="Character offset after the last character.")
    label: str
    score: float = Field(description="Mean probability of the entity's labels.")
    text: str = Field(description="Exactly text[start:end].")
    review: bool | None = Field(None, description="True: scored below the service's --min_score, kept for review "
                                "(--review); absent otherwise.")


class EntitiesOut(BaseModel):
    entities: list[EntityOut]


class ResultsOut(BaseModel):
    results: list[EntitiesOut]


class _Job:
    __slots__ = ("texts", "future")

    def __init__(self, texts: list[str], future: asyncio.Future):
        self.texts = texts
        self.future = future


class MicroBatcher:
    """Gathers the texts of concurrent requests into batches for one ``predict(texts) -> results``
    function run on a single worker thread; results go back to each request in order."""

    def __init__(self, predict: Callable[[list[str]], list[Any]], max_texts: int = 128, max_wait_ms: float = 0.0):
        self.predict = predict
        self.max_texts = max_texts
        self.max_wait = max_wait_ms / 1000
        self.batches = 0
        self.batched_texts = 0
        self._queue: asyncio.Queue[_Job | None] | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tagtune-predict")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def submit(self, texts: list[str]) -> list[Any]:
        """Tag ``texts`` (with whatever else is waiting) and return their results."""
        if self._queue is None or self._task is None or self._task.done():
            raise RuntimeError("the batcher is not running")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(texts, future))
        return await future

    async def stop(self) -> None:
        """Finish every job already submitted, then stop the worker."""
        if self._queue is not None and self._task is not None:
            await self._queue.put(None)
            await self._task
            while not self._queue.empty():  # came after the stop: refuse rather than leave waiting
                job = self._queue.get_nowait()
                if job is not None and not job.future.done():
                    job.future.set_exception(RuntimeError("the service is shutting down"))
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            job = await self._queue.get()
            if job is None:
                break
            jobs, count = [job], len(job.texts)
            deadline = loop.time() + self.max_wait
            while count < self.max_texts:
                try:
                    if self._queue.empty() and loop.time() < deadline:
                        nxt = await asyncio.wait_for(self._queue.get(), deadline - loop.time())
                    else:
                        nxt = self._queue.get_nowait()
                except (asyncio.QueueEmpty, TimeoutError):
                    break
                if nxt is None:
                    stopping = True
                    break
                jobs.append(nxt)
                count += len(nxt.texts)
            await self._run_jobs(loop, jobs)

    async def _run_jobs(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job]) -> None:
        texts = [text for job in jobs for text in job.texts]
        self.batches += 1
        self.batched_texts += len(texts)
        try:
            results = await loop.run_in_executor(self._executor, self.predict, texts)
        except Exception as error:  # one failing batch must not stop the service
            logger.exception("prediction failed for a batch of %d texts", len(texts))
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        position = 0
        for job in jobs:
            if not job.future.done():  # the client may have gone away
                job.future.set_result(results[position : position + len(job.texts)])
            position += len(job.texts)


class _BodyLimit:
    """ASGI middleware: a body larger than ``max_bytes`` is refused with 413 before it is all read."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_error(send, 413, f"the request body has {int(declared)} bytes; the limit is {self.max_bytes}")
            return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, f"the request body exceeds the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)


async def _send_error(send, status: int, message: str) -> None:
    import json

    body = json.dumps({"error": {"status": status, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(tagger, config: ServeConfig = ServeConfig()):
    """The FastAPI application serving ``tagger`` (anything with ``predict(texts)`` and ``metadata()``)."""
    def predict_texts(texts: list[str]) -> list[dict[str, Any]]:
        return [{"entities": [e.as_dict() for e in p.entities]} for p in tagger.predict(texts)]

    batcher = MicroBatcher(predict_texts, config.max_batch_texts, config.max_wait_ms)
    state = {"accepting": False}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        state["accepting"] = True
        yield
        state["accepting"] = False
        await batcher.stop()  # finishes what was accepted before returning
        logger.info("stopped after %d batches (%d texts)", batcher.batches, batcher.batched_texts)

    app = FastAPI(title="tagtune", version=_version(), lifespan=lifespan,
                  description="Token classification (named entities with character offsets).")
    app.add_middleware(_BodyLimit, max_bytes=config.max_body_bytes)
    app.state.batcher = batcher
    key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                              description="Needed when the service was started with an API key.")

    def check_key(key: str | None = Depends(key_header)) -> None:
        if config.api_key is None:
            return
        if key is None or not hmac.compare_digest(key.encode(), config.api_key.encode()):
            raise HTTPException(401, f"missing or wrong {API_KEY_HEADER} header")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": {"status": error.status_code, "message": str(error.detail)}},
                            status_code=error.status_code, headers=getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in error.errors())
        return JSONResponse({"error": {"status": 422, "message": problems or "invalid request"}}, status_code=422)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness and readiness: 200 while requests are accepted."""
        if not state["accepting"]:
            raise HTTPException(503, "shutting down")
        return {"status": "ok"}

    @app.get("/metadata", dependencies=[Depends(check_key)])
    async def metadata() -> dict[str, Any]:
        """Labels, model, backend, precision and request limits."""
        return {**tagger.metadata(), "limits": config.limits(), "version": _version()}

    @app.post("/predict", dependencies=[Depends(check_key)], response_model=EntitiesOut | ResultsOut,
              response_model_exclude_none=True,
              responses={401: {"description": "Missing or wrong API key"},
                         413: {"description": "Body, number of texts or text length over the limits"},
                         422: {"description": "Not exactly one of text / texts, or wrong types"}})
    async def predict(request: PredictRequest) -> dict[str, Any]:
        """Entities of one text (``{"entities"}``) or of each text of a list (``{"results"}``)."""
        if (request.text is None) == (request.texts is None):
            raise HTTPException(422, "give exactly one of 'text' (a string) or 'texts' (a list of strings)")
        texts = [request.text] if request.text is not None else list(request.texts or [])
        if len(texts) > config.max_texts:
            raise HTTPException(413, f"{len(texts)} texts in one request; the limit is {config.max_texts}")
        for i, text in enumerate(texts):
            if len(text) > config.max_chars:
                raise HTTPException(413, f"text #{i} has {len(text)} characters; the limit is {config.max_chars}")
            try:  # checked here: one bad text must not fail the batch it would share with other requests
                text.encode("utf-8")
            except UnicodeEncodeError as error:
                raise HTTPException(422, f"text #{i} is not valid Unicode (a lone surrogate at character "
                                         f"{error.start})") from None
        if not state["accepting"]:
            raise HTTPException(503, "shutting down")
        results = await batcher.submit(texts) if texts else []
        return results[0] if request.text is not None else {"results": results}

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        """The page to try the model: type a text, see its entities (no API key needed for the page)."""
        return FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _version() -> str:
    import tagtune

    return tagtune.__version__


def api_key_from_env(variable: str = API_KEY_ENV) -> str | None:
    """The API key from the environment (never from the command line, where ``ps`` would show it)."""
    value = os.environ.get(variable, "").strip()
    return value or None


def serve(tagger, config: ServeConfig = ServeConfig(), log_level: str = "info") -> None:
    """Run the service with uvicorn until SIGINT/SIGTERM, then finish running requests and stop."""
    import uvicorn

    if config.host not in _LOOPBACK:
        logger.warning("binding %s: the service is reachable from other machines%s", config.host,
                       "" if config.api_key else " and has no API key (set %s)" % API_KEY_ENV)
    logger.info("serving %s on http://%s:%d (page at /, docs at /docs); limits %s", tagger.metadata().get("model"),
                config.host, config.port, config.limits())
    uvicorn.run(create_app(tagger, config), host=config.host, port=config.port, log_level=log_level,
                timeout_graceful_shutdown=int(config.graceful_seconds), access_log=False,
                limit_concurrency=config.max_concurrent)


__all__: Sequence[str] = ("ServeConfig", "MicroBatcher", "create_app", "serve", "api_key_from_env")
