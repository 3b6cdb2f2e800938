"""What every export format shares: the error, the validation report and the format registry entry.

A validator returns a `ValidationResult`: errors (the consumer rejects or silently skips the record) and
warnings (the consumer accepts it but something is off: truncation, duplicates, leakage). Every problem
names the file, the line (1-based; None for a file-level problem), the record id when known, the rule
(a stable key, e.g. `unrecognized_role`), what is wrong and the fix.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from brightrun.errors import BrightRunError

Kind = Literal["sft", "preference", "kto"]


class ExportError(BrightRunError):
    """An export cannot be written as asked (bad input records, an unusable folder or split name)."""


class Problem(BaseModel):
    file: str
    line: int | None = Field(description="1-based line (JSONL) or row (Parquet); None for the whole file")
    record_id: str | None = None
    rule: str
    message: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        rid = f" [{self.record_id}]" if self.record_id else ""
        return f"{where}{rid} {self.rule}: {self.message}. Fix: {self.fix}"


class ValidationResult(BaseModel):
    format: str
    files: list[str] = Field(default_factory=list)
    errors: list[Problem] = Field(default_factory=list)
    warnings: list[Problem] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict,
                                   description="rule -> occurrences, including those past the listing cap")
    stats: dict[str, Any] = Field(default_factory=dict, description="per-split token statistics and counts")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.errors

    def rules(self, severity: Literal["errors", "warnings", "all"] = "all") -> set[str]:
        found = []
        if severity in ("errors", "all"):
            found += self.errors
        if severity in ("warnings", "all"):
            found += self.warnings
        return {p.rule for p in found}

    def summary(self) -> str:
        head = f"{self.format}: {'OK' if self.ok else 'FAILED'}, {len(self.errors)} errors, " \
               f"{len(self.warnings)} warnings"
        return "\n".join([head, *(f"  error   {p}" for p in self.errors[:20]),
                          *(f"  warning {p}" for p in self.warnings[:20])])


@dataclass(frozen=True)
class Where:
    """The place of one record: file, 1-based line and the record id when the export manifest knows it."""

    file: str
    line: int | None
    record_id: str | None = None


class Report:
    """Collects problems while a validator runs; at most `cap` listed per rule and severity (all counted)."""

    def __init__(self, fmt: str, cap: int = 200) -> None:
        self.fmt, self.cap = fmt, cap
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.counts: Counter = Counter()
        self.stats: dict[str, Any] = {}

    def _add(self, bucket: list[Problem], where: Where, rule: str, message: str, fix: str) -> None:
        key = f"{'E' if bucket is self.errors else 'W'}:{rule}"
        self.counts[key] += 1
        if self.counts[key] <= self.cap:
            bucket.append(Problem(file=where.file, line=where.line, record_id=where.record_id, rule=rule,
                                  message=message, fix=fix))

    def error(self, where: Where, rule: str, message: str, fix: str) -> None:
        self._add(self.errors, where, rule, message, fix)

    def warn(self, where: Where, rule: str, message: str, fix: str) -> None:
        self._add(self.warnings, where, rule, message, fix)

    def result(self, files: list[Path]) -> ValidationResult:
        counts: Counter = Counter()
        for key, n in self.counts.items():
            counts[key.split(":", 1)[1]] += n
        return ValidationResult(format=self.fmt, files=[str(f) for f in files], errors=self.errors,
                                warnings=self.warnings, counts=dict(counts), stats=self.stats)


Writer = Callable[..., list[Path]]
Validator = Callable[..., ValidationResult]


@dataclass(frozen=True)
class FormatSpec:
    name: str
    kind: Kind
    writer: Writer
    validator: Validator
    description: str
    consumer: str
    token_limit: int | None
    """The consumer's default per-example token limit the validator applies (None: not documented)."""
