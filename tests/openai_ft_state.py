"""The state behind the fake OpenAI fine-tuning server (tests/openai_ft_server.py, which documents the
behaviour): uploaded files, jobs and how they move, injected faults and the request log. No HTTP here."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field

ROLES = {"system", "user", "assistant", "tool", "function"}
TERMINAL = {"succeeded", "failed", "cancelled"}
FAULTS = {
    "server_error": (500, "server_error", "The server had an error while processing your request (fake)."),
    "rate_limit": (429, "requests", "Rate limit reached for requests (fake)."),
    "authentication": (401, "invalid_request_error", "Incorrect API key provided (fake)."),
    "bad_request": (400, "invalid_request_error", "This request is invalid (fake)."),
}


def example_tokens(example: dict) -> int:
    """The fake's token count of one example: 3 + per message 4 + characters / 4 of its content."""
    return 3 + sum(4 + len(str(m.get("content") or "")) // 4 for m in example["messages"])


def cookbook_epochs(n: int) -> int:
    if n * 3 < 100:
        return min(25, 100 // max(n, 1))
    if n * 3 > 25_000:
        return max(1, 25_000 // n)
    return 3


def check_sft_line(line: bytes) -> str | None:
    """Why a JSONL line is not a chat SFT example (None when it is)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return "not valid JSON"
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list) or not obj["messages"]:
        return "no 'messages' list"
    for i, m in enumerate(obj["messages"], start=1):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return f"message {i} has no known role"
        if not isinstance(m.get("content"), str) and not m.get("tool_calls"):
            return f"message {i} has no text content"
    if not any(m["role"] == "assistant" for m in obj["messages"]):
        return "no assistant message"
    return None


@dataclass
class Fault:
    kind: str
    count: int
    path: str | None = None
    method: str | None = None


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int
    examples: list[dict] = field(default_factory=list)

    def obj(self) -> dict:
        return {"id": self.id, "object": "file", "bytes": len(self.content), "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed"}

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.content.splitlines() if line.strip()]


class FineTuningState:
    """Files, jobs, faults and the request log of the fake; thread-safe (one re-entrant lock)."""

    def __init__(self, *, api_key: str = "sk-fake-finetune-0123456789", min_examples: int = 10,
                 models: set[str] | None = None, retry_after_ms: int = 10, auto_advance: bool = False,
                 hang_seconds: float = 30.0, organization: str = "org-brightrun-test") -> None:
        self.api_key = api_key
        self.min_examples = min_examples
        self.models = models
        self.retry_after_ms = retry_after_ms
        self.auto_advance = auto_advance
        self.hang_seconds = hang_seconds
        self.organization = organization
        self.files: dict[str, StoredFile] = {}
        self.jobs: dict[str, dict] = {}
        self.requests: list[tuple[str, str, int | None]] = []
        self.faults: list[Fault] = []
        self._doomed: list[tuple[str, str]] = []
        self._lock = threading.RLock()

    # -- driving it from a test

    def inject(self, kind: str, count: int = 1, *, path: str | None = None, method: str | None = None) -> None:
        """The next `count` requests (whose path starts with `path`, of `method`) get the fault `kind`."""
        if kind not in (*FAULTS, "drop", "drop_after", "hang"):
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self.faults.append(Fault(kind, count, path, method))

    def fail_next_job(self, message: str = "The training file failed validation (fake).",
                      code: str = "invalid_training_file") -> None:
        """The next job created fails when it leaves validating_files."""
        with self._lock:
            self._doomed.append((code, message))

    def advance(self, job_id: str | None = None) -> str:
        """Move a job (default: the newest) one step; returns its new status."""
        with self._lock:
            job = self.jobs[job_id] if job_id else max(self.jobs.values(), key=lambda j: j["created_at_ns"])
            status = job["status"]
            if status in TERMINAL:
                return status
            if status == "validating_files":
                self._validate(job)
            elif status == "queued":
                job["status"] = "running"
            elif status == "running":
                self._succeed(job)
            return job["status"]

    def finish(self, job_id: str | None = None) -> str:
        """Advance a job until it ends; returns its final status."""
        status = self.advance(job_id)
        while status not in TERMINAL:
            status = self.advance(job_id)
        return status

    def job(self, job_id: str) -> dict:
        with self._lock:
            return self._public(self.jobs[job_id])

    def count(self, method: str, path: str) -> int:
        """Requests of `method` whose path starts with `path`, dropped ones included."""
        with self._lock:
            return sum(1 for m, p, _ in self.requests if m == method and p.startswith(path))

    # -- state (under the lock)

    def _log(self, method: str, path: str, status: int | None) -> None:
        with self._lock:
            self.requests.append((method, path, status))

    def _take_fault(self, method: str, path: str) -> str | None:
        with self._lock:
            for fault in self.faults:
                if fault.count > 0 and (fault.path is None or path.startswith(fault.path)) and (
                        fault.method is None or fault.method == method):
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                    return fault.kind
        return None

    def _add_file(self, filename: str, purpose: str, content: bytes, examples: list[dict]) -> StoredFile:
        with self._lock:
            stored = StoredFile(f"file-{uuid.uuid4().hex[:24]}", filename, purpose, content, int(time.time()),
                                examples)
            self.files[stored.id] = stored
            return stored

    def _check_create(self, body: dict) -> tuple[str | None, str | None]:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return "'model' is required", "model"
        if self.models is not None and model not in self.models:
            return f"Model {model} is not available for fine-tuning or does not exist.", "model"
        for param in ("training_file", "validation_file"):
            file_id = body.get(param)
            if file_id is None and param == "validation_file":
                continue
            stored = self.files.get(file_id) if isinstance(file_id, str) else None
            if stored is None or stored.purpose != "fine-tune":
                return f"invalid {param} {file_id!r}: no file with purpose fine-tune has this id", param
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64):
            return "suffix must be a string of at most 64 characters", "suffix"
        epochs = self._hyperparameters(body).get("n_epochs", "auto")
        if epochs != "auto" and (not isinstance(epochs, int) or not 1 <= epochs <= 50):
            return f"n_epochs must be 'auto' or an integer from 1 to 50, not {epochs!r}", "n_epochs"
        return None, None

    @staticmethod
    def _hyperparameters(body: dict) -> dict:
        method = body.get("method") or {}
        if method.get("type") == "supervised":
            return dict((method.get("supervised") or {}).get("hyperparameters") or {})
        return dict(body.get("hyperparameters") or {})

    def _create_job(self, body: dict) -> dict:
        with self._lock:
            hyper = {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto",
                     **self._hyperparameters(body)}
            job = {"id": f"ftjob-{uuid.uuid4().hex[:24]}", "object": "fine_tuning.job",
                   "created_at": int(time.time()), "created_at_ns": time.time_ns(), "error": None,
                   "fine_tuned_model": None, "finished_at": None, "hyperparameters": hyper, "model": body["model"],
                   "organization_id": self.organization, "result_files": [], "seed": int(body.get("seed") or 42),
                   "status": "validating_files", "trained_tokens": None, "training_file": body["training_file"],
                   "validation_file": body.get("validation_file"), "estimated_finish": None, "integrations": [],
                   "metadata": body.get("metadata"), "suffix": body.get("suffix"),
                   "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
                   "_doom": self._doomed.pop(0) if self._doomed else None}
            self.jobs[job["id"]] = job
            return self._public(job)

    @staticmethod
    def _public(job: dict) -> dict:
        return {k: v for k, v in job.items() if not k.startswith("_") and k != "created_at_ns"}

    def _validate(self, job: dict) -> None:
        examples = self.files[job["training_file"]].examples
        doom = job["_doom"]
        if doom is None and len(examples) < self.min_examples:
            doom = ("invalid_training_file", f"Training file has {len(examples)} example(s), but must have at "
                    f"least {self.min_examples} examples")
        if doom:
            job["status"], job["finished_at"] = "failed", int(time.time())
            job["error"] = {"code": doom[0], "message": doom[1], "param": "training_file"}
            return
        if job["hyperparameters"]["n_epochs"] == "auto":
            job["hyperparameters"]["n_epochs"] = cookbook_epochs(len(examples))
        job["status"] = "queued"

    def _succeed(self, job: dict) -> None:
        examples = self.files[job["training_file"]].examples
        job["status"], job["finished_at"] = "succeeded", int(time.time())
        job["trained_tokens"] = job["hyperparameters"]["n_epochs"] * sum(example_tokens(e) for e in examples)
        job["fine_tuned_model"] = f"ft:{job['model']}:{self.organization}:{job['suffix'] or ''}:{job['id'][-8:]}"
        job["result_files"] = [f"file-result-{job['id'][-8:]}"]

    def cancel(self, job_id: str) -> str | None:
        """Cancel a job; returns why it cannot be cancelled (None when it was)."""
        with self._lock:
            job = self.jobs[job_id]
            if job["status"] in TERMINAL:
                return f"Job has already {job['status']}; it cannot be cancelled"
            job["status"], job["finished_at"] = "cancelled", int(time.time())
            return None

    def list_jobs(self, metadata: dict[str, str], after: str | None, limit: int) -> dict:
        """A page of jobs, newest first, whose metadata has every item of `metadata`."""
        with self._lock:
            jobs = sorted(self.jobs.values(), key=lambda j: j["created_at_ns"], reverse=True)
            jobs = [j for j in jobs if all((j.get("metadata") or {}).get(k) == v for k, v in metadata.items())]
            if after is not None:
                ids = [j["id"] for j in jobs]
                jobs = jobs[ids.index(after) + 1:] if after in ids else []
            return {"object": "list", "data": [self._public(j) for j in jobs[:limit]], "has_more": len(jobs) > limit}

