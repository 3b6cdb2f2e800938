"""A fake OpenAI Files and fine-tuning jobs API for tests: real HTTP on loopback; the official `openai` SDK talks
to it unchanged (``base_url=server.base_url``, which ends in ``/v1``).

Endpoints:

* ``POST /v1/files`` (multipart: ``file``, ``purpose``), ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``
* ``POST /v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs`` (``after``, ``limit``, ``metadata[k]=v``),
  ``GET /v1/fine_tuning/jobs/{id}``, ``POST /v1/fine_tuning/jobs/{id}/cancel``

An upload with purpose ``fine-tune`` must be JSONL whose every line is a chat SFT example (``messages``: a list
of ``{"role", "content"}`` with known roles, at least one assistant turn); otherwise 400 naming the line, as
OpenAI answers "Invalid file format". A job starts in ``validating_files``; ``advance(job_id)`` moves it one
step (validating_files -> queued -> running -> succeeded) and ``finish(job_id)`` to the end. Validation fails
the job (``error.code`` ``invalid_training_file``) when the training file has fewer than ``min_examples``
examples, or when ``fail_next_job()`` doomed it. ``n_epochs`` "auto" becomes the cookbook default when the job
leaves validation; on success ``trained_tokens`` = epochs x the sum of ``example_tokens`` of the training
examples, and ``fine_tuned_model`` = ``ft:<model>:<org>:<suffix>:<id>``. With ``auto_advance`` every
retrieve moves the job one step before answering.

Authentication: ``Authorization: Bearer <api_key>`` with the server's key, else 401 ``invalid_api_key``.

Faults (``inject(kind, count, path=, method=)``): the next ``count`` matching requests get
``server_error`` (500), ``rate_limit`` (429), ``authentication`` (401), ``bad_request`` (400), ``drop`` (the
connection closes, no answer), ``drop_after`` (the request takes effect, then the connection closes without
an answer: a lost response) or ``hang`` (no answer until the client goes away). Errors carry
``retry-after-ms: <retry_after_ms>`` so SDK retries are quick.

``server.requests`` lists ``(method, path, status)`` of every request (status None when dropped);
``server.files`` and ``server.jobs`` hold what was uploaded and created. The state and its rules live in
tests/openai_ft_state.py; this module is the HTTP around them. No pytest dependency.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web
from openai_ft_state import FAULTS, FineTuningState, check_sft_line

__all__ = ["FakeOpenAIFineTuning"]


class _Handler(tornado.web.RequestHandler):
    def initialize(self, server: FakeOpenAIFineTuning) -> None:
        self.srv = server
        self._drop_after = False
        self._gone = False

    def check_xsrf_cookie(self) -> None:
        return None

    def on_connection_close(self) -> None:
        self._gone = True

    def send(self, status: int, obj: Any, raw: bytes | None = None) -> None:
        if self._drop_after:
            self.srv._log(self.request.method, self.request.path, None)
            self.detach().close()
            return
        self.srv._log(self.request.method, self.request.path, status)
        self.set_status(status)
        self.set_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        if status >= 400:
            self.set_header("retry-after-ms", str(self.srv.retry_after_ms))
        self.finish(raw if raw is not None else json.dumps(obj).encode())

    def fail(self, status: int, error_type: str, message: str, code: str | None = None, param: str | None = None) -> None:
        self.send(status, {"error": {"message": message, "type": error_type, "param": param, "code": code}})

    async def prepare(self) -> None:
        auth = self.request.headers.get("Authorization", "")
        if auth != f"Bearer {self.srv.api_key}":
            self.fail(401, "invalid_request_error", "Incorrect API key provided (fake server).", "invalid_api_key")
            return
        fault = self.srv._take_fault(self.request.method, self.request.path)
        if fault is None:
            return
        if fault in FAULTS:
            status, error_type, message = FAULTS[fault]
            self.fail(status, error_type, message, "invalid_api_key" if status == 401 else None)
        elif fault == "drop":
            self.srv._log(self.request.method, self.request.path, None)
            self.detach().close()
        elif fault == "drop_after":
            self._drop_after = True
        elif fault == "hang":
            started = time.monotonic()
            while not self._gone and time.monotonic() - started < self.srv.hang_seconds:
                await asyncio.sleep(0.02)
            self.srv._log(self.request.method, self.request.path, None)
            self.detach().close()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.fail(status_code, "invalid_request_error", self._reason or "error")


class FilesHandler(_Handler):
    def post(self) -> None:
        uploads = self.request.files.get("file") or []
        purpose = self.get_body_argument("purpose", "")
        if len(uploads) != 1 or not purpose:
            self.fail(400, "invalid_request_error", "'file' and 'purpose' are required", param="file")
            return
        upload = uploads[0]
        examples: list[dict] = []
        if purpose == "fine-tune":
            if not upload.filename.endswith(".jsonl"):
                self.fail(400, "invalid_request_error", "Invalid file format for Fine-Tuning API. Must be .jsonl",
                          param="file")
                return
            for n, line in enumerate(upload.body.splitlines(), start=1):
                if not line.strip():
                    continue
                problem = check_sft_line(line)
                if problem:
                    self.fail(400, "invalid_request_error", f"Invalid file format: line {n}: {problem}",
                              param="file")
                    return
                examples.append(json.loads(line))
        stored = self.srv._add_file(upload.filename, purpose, upload.body, examples)
        self.send(200, stored.obj())


class FileHandler(_Handler):
    def get(self, file_id: str, content: str | None = None) -> None:
        stored = self.srv.files.get(file_id)
        if stored is None:
            self.fail(404, "invalid_request_error", f"No such File object: {file_id}", param="id")
        elif content:
            self.send(200, None, raw=stored.content)
        else:
            self.send(200, stored.obj())


class JobsHandler(_Handler):
    def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.fail(400, "invalid_request_error", "the body is not a JSON object")
            return
        problem, param = self.srv._check_create(body)
        if problem:
            self.fail(400, "invalid_request_error", problem, "invalid_value", param)
            return
        self.send(200, self.srv._create_job(body))

    def get(self) -> None:
        wanted = {k[len("metadata["):-1]: self.get_query_argument(k) for k in self.request.arguments
                  if k.startswith("metadata[") and k.endswith("]")}
        self.send(200, self.srv.list_jobs(wanted, self.get_query_argument("after", None),
                                          int(self.get_query_argument("limit", "20"))))


class JobHandler(_Handler):
    def get(self, job_id: str, action: str | None = None) -> None:
        if job_id not in self.srv.jobs or action:
            self.fail(404, "invalid_request_error", f"No such fine-tuning job: {job_id}", param="id")
            return
        if self.srv.auto_advance:
            self.srv.advance(job_id)
        self.send(200, self.srv.job(job_id))

    def post(self, job_id: str, action: str | None = None) -> None:
        if job_id not in self.srv.jobs or action != "cancel":
            self.fail(404, "invalid_request_error", f"No such fine-tuning job: {job_id}", param="id")
            return
        refused = self.srv.cancel(job_id)
        if refused:
            self.fail(400, "invalid_request_error", refused)
        else:
            self.send(200, self.srv.job(job_id))


class FakeOpenAIFineTuning(FineTuningState):
    """See the module docstring. Start it with `with FakeOpenAIFineTuning() as server:` or `.start()`."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: tornado.httpserver.HTTPServer | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("FakeOpenAIFineTuning is not started; call start() first")
        return f"http://127.0.0.1:{self.port}/v1"

    # -- lifecycle

    def _app(self) -> tornado.web.Application:
        kw = {"server": self}
        return tornado.web.Application([
            (r"/v1/files", FilesHandler, kw),
            (r"/v1/files/([^/]+)", FileHandler, kw),
            (r"/v1/files/([^/]+)/(content)", FileHandler, kw),
            (r"/v1/fine_tuning/jobs", JobsHandler, kw),
            (r"/v1/fine_tuning/jobs/([^/]+)", JobHandler, kw),
            (r"/v1/fine_tuning/jobs/([^/]+)/([a-z]+)", JobHandler, kw),
        ], log_function=lambda handler: None)

    def start(self) -> FakeOpenAIFineTuning:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            sockets = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
            self._http = tornado.httpserver.HTTPServer(self._app(), max_body_size=600 * 1024 * 1024)
            self._http.add_sockets(sockets)
            self.port = sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="FakeOpenAIFineTuning", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        loop, http = self._loop, self._http

        def shutdown() -> None:
            if http is not None:
                http.stop()
            loop.stop()

        loop.call_soon_threadsafe(shutdown)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> FakeOpenAIFineTuning:
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
