"""One error root for BrightRun. Every message says what to do next.

May import: nothing from BrightRun.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Mapping


class BrightRunError(Exception):
    """Base of every error BrightRun raises on purpose.

    The message names what went wrong, where (file, key, record) and the fix.
    """


class ScaffoldingError(BrightRunError):
    """The scaffolding library (YAML) is invalid."""


class TemplateError(BrightRunError):
    """A prompt template is invalid or cannot be rendered."""


class WorkspaceError(BrightRunError):
    """The workspace folder, a table or a document cannot be used."""


class JobError(BrightRunError):
    """A batch job cannot be created, run or resumed as asked."""


class JobStopped(JobError):
    """A job stopped part-way (a key refused, the same non-retryable error on every first call); `job` is its
    state as written. Calls were made, so the command that ran it exits 1, not 2."""

    def __init__(self, message: str, job) -> None:
        super().__init__(message)
        self.job = job


class ProviderError(BrightRunError):
    """A model provider failed or answered with something unusable."""

    def __init__(self, message: str, *, error_type: str = "provider_error", raw: str | None = None,
                 transient: bool = False) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.raw = raw
        self.transient = transient


class RecordError(BrightRunError):
    """One record is malformed; the records around it are unaffected."""

    def __init__(self, record_id: str, reason: str, fix: str) -> None:
        super().__init__(f"record {record_id!r}: {reason}. Fix: {fix}")
        self.record_id = record_id
        self.reason = reason
        self.fix = fix


class FeedbackError(BrightRunError):
    """A judgement could not be recorded or exported (no reviewer, unknown target, invalid values)."""


class DatasetError(BrightRunError):
    """A training dataset could not be built as asked."""


class TrainingFileError(BrightRunError):
    """A training file cannot be created, changed or built as asked."""

    def __init__(self, message: str, problems: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.problems = dict(problems or {})
ID_RULE = "lower-case letters, digits, '-' or '_', starting with a letter or digit"


def id_pattern(longest: int, first: str = "a-z0-9") -> re.Pattern[str]:
    """A lower-case id: one of `first`, then up to longest - 1 of letters, digits, '-' and '_'."""
    return re.compile(rf"[{first}][a-z0-9_-]{{0,{longest - 1}}}")


def check_name(value: object, what: str, pattern: re.Pattern[str], rule: str,
               error: type[Exception] = BrightRunError) -> str:
    """The one rule for every id and name a user gives (jobs, experiments, arms, labels, datasets, training
    files): the whole value must match `pattern` (`fullmatch`, so a trailing newline never slips through as
    it does past `$`), else `error` saying what is allowed. Returns the value."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise error(f"{what} {value!r} is not allowed. Fix: use {rule}.")
    return value


_PYDANTIC_PREFIX = re.compile(r"^(Value error|Assertion failed), ")


def validation_problem(exc: Exception, what: str, fix: str) -> str:
    """A user's message for a pydantic ValidationError about `what` (e.g. "experiment 'x'"): its first problem
    with the field it is in and the fix, `... is not valid: field F: problem. Fix: ...`. Pydantic's
    "Value error, " prefix and the validator tags it puts in a location (`function-after[_check(), str]`) are
    dropped; a problem that carries its own fix keeps it instead of `fix`."""
    errors = exc.errors() if hasattr(exc, "errors") else []
    if not errors:
        return f"{what} is not valid: {exc}. Fix: {fix}."
    first = errors[0]
    problem = _PYDANTIC_PREFIX.sub("", str(first.get("msg", ""))).rstrip(". ")
    fields = [str(part) for part in first.get("loc", ()) if not re.search(r"[\[\](){}]", str(part))]
    where = f"field {'.'.join(fields)}: " if fields else ""
    more = f" ({len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    if "Fix:" in problem:
        return f"{what} is not valid: {where}{problem}.{more}"
    return f"{what} is not valid: {where}{problem}{more}. Fix: {fix}."


def os_error(exc: OSError) -> BrightRunError | None:
    """The user's own words for an OSError a user can cause (a read-only workspace, no permission, a full
    disk), or None for any other. The CLI and the pages show these as `... Fix: ...`, not a traceback."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == errno.EROFS:
        return BrightRunError(f"the workspace is on a read-only file system: nothing can be written{where}. "
                              f"Fix: point --workspace (or $BRIGHTRUN_WORKSPACE) at a writable copy, or mount it "
                              f"read-write; read-only commands (status, sql, show, list) still work.")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return BrightRunError(f"no permission to write in the workspace{where}. Fix: run as the user who owns "
                              f"the workspace, or give yours write access (ls -l shows the owner).")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return BrightRunError(f"the disk is full{where}: what was being written was not kept. Fix: free space on "
                              f"that disk (df -h shows it), then run the command again; finished work is kept.")
    return None
