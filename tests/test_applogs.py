"""Importing production app logs: mapping, validation by line, idempotence, feedback, personal data."""

from __future__ import annotations

import csv
import hashlib
import io
import random
from datetime import UTC, datetime
from pathlib import Path

import orjson
import polars as pl
import pytest
from typer.testing import CliRunner

from brightrun.applogs import (
    ColumnMapping,
    allowed_log_path,
    detect,
    guess_mapping,
    import_log,
    list_imports,
    list_log_files,
    parse_map_options,
    pii_counts,
    redact,
    redact_counted,
    redact_frame,
    redact_series,
    save_upload,
)
from brightrun.applogs.demo_log import STEPS, build_coaching_log
from brightrun.applogs.rows import MAX_TEXT_CHARS
from brightrun.cli.main import app
from brightrun.errors import BrightRunError
from brightrun.workspace import Workspace

runner = CliRunner()
COLUMNS = ["ts", "user_id", "session_id", "step", "category", "prompt", "response", "model", "prompt_tokens",
           "completion_tokens", "latency_ms", "thumbs", "rating", "feedback"]


def good(i: int, **changes) -> dict:
    record = {"ts": f"2025-03-01T10:{i % 60:02d}:00Z", "user_id": f"u{i % 3}", "session_id": f"s{i // 4}",
              "step": ["frequency_flip", "blueprint_generation", "final_assembly"][i % 3], "category": "career",
              "prompt": f"Flip this: I am stuck, take {i}", "response": f"You are moving forward, take {i}.",
              "model": "claude-haiku-4-5", "prompt_tokens": "120", "completion_tokens": "40", "latency_ms": "850",
              "thumbs": "up" if i % 2 else "", "rating": "5" if i % 4 == 1 else "", "feedback": ""}
    record.update(changes)
    return record


# Each kind of bad value: (changes to a good row, the field reported, words of the reason).
BAD_VALUES = [
    ({"step": ""}, "action_type", "action type is empty"),
    ({"prompt": "   "}, "input", "input is empty"),
    ({"response": ""}, "output", "output is empty"),
    ({"prompt_tokens": "abc"}, "input_tokens", "'abc' is not a number"),
    ({"completion_tokens": "-3"}, "output_tokens", "-3 is negative"),
    ({"prompt_tokens": "12.5"}, "input_tokens", "not a whole number"),
    ({"latency_ms": "slow"}, "latency_ms", "'slow' is not a number"),
    ({"latency_ms": "-1"}, "latency_ms", "-1 is negative"),
    ({"rating": "0"}, "rating", "outside 1..5"),
    ({"rating": "6"}, "rating", "outside 1..5"),
    ({"rating": "4.5"}, "rating", "not a whole number"),
    ({"rating": "great"}, "rating", "'great' is not a number"),
    ({"thumbs": "maybe"}, "helpful", "'maybe' is not a thumbs value"),
    ({"ts": "yesterday"}, "created_at", "'yesterday' is not a timestamp"),
    ({"ts": "2025-13-45T10:00:00Z"}, "created_at", "is not a timestamp"),
    ({"response": "x" * (MAX_TEXT_CHARS + 1)}, "output", "200,001 characters long"),
]


def mixed_rows() -> tuple[list[dict], list[tuple[int, str, str] | None]]:
    """Good rows with every kind of bad value among them; per row its expected problem (or None)."""
    rows, expected = [], []
    for i, (changes, field, words) in enumerate(BAD_VALUES):
        rows.append(good(2 * i))
        expected.append(None)
        rows.append(good(2 * i + 1, **changes))
        expected.append((i, field, words))
    rows.append(good(99))
    expected.append(None)
    return rows, expected


def check_report(result, lines: list[int], expected: list) -> None:
    """Every bad row is reported once, with its line and reason; every good row is imported."""
    by_line = {(e.line, e.field): e for e in result.errors}
    bad = [(line, exp) for line, exp in zip(lines, expected, strict=True) if exp is not None]
    for line, (_, field, words) in bad:
        assert (line, field) in by_line, (line, field, [str(e) for e in result.errors])
        error = by_line[(line, field)]
        assert words in error.reason and error.fix, str(error)
    assert result.bad_rows == len(bad) + sum(1 for e in result.errors if e.field == "row")
    assert result.imported == result.new_calls == expected.count(None)


def imported_lines(ws: Workspace, result) -> list[int]:
    return ws.sql("SELECT source_line FROM llm_calls WHERE import_id = ? ORDER BY 1", [result.import_id]
                  )["source_line"].to_list()


# -- mapping ---------------------------------------------------------------------------------------------


def test_guess_mapping_by_common_names() -> None:
    mapping = guess_mapping(COLUMNS)
    assert mapping.fields() == {
        "action_type": "step", "input": "prompt", "output": "response", "user_id": "user_id",
        "session_id": "session_id", "category": "category", "model": "model", "input_tokens": "prompt_tokens",
        "output_tokens": "completion_tokens", "latency_ms": "latency_ms", "helpful": "thumbs", "rating": "rating",
        "feedback_text": "feedback", "created_at": "ts"}
    other = guess_mapping(["Timestamp", "User", "Action Type", "Request", "Completion", "Thumbs Up", "Input Tokens",
                           "request_id", "Comment"])
    assert other.fields() == {"action_type": "Action Type", "input": "Request", "output": "Completion",
                              "user_id": "User", "helpful": "Thumbs Up", "input_tokens": "Input Tokens",
                              "created_at": "Timestamp", "call_id": "request_id", "feedback_text": "Comment"}
    with pytest.raises(BrightRunError, match=r"which column holds output.*columns are: step, question.*--map"):
        guess_mapping(["step", "question"])
    fixed = guess_mapping(["step", "question", "said"], parse_map_options(["output=said", "input=question"]))
    assert (fixed.input, fixed.output) == ("question", "said")
    assert guess_mapping(COLUMNS, {"rating": None}).rating is None  # "rating=" leaves it out
    with pytest.raises(BrightRunError, match="unknown field 'prompt'"):
        parse_map_options(["prompt=prompt"])
    with pytest.raises(BrightRunError, match="is not field=column"):
        parse_map_options(["input"])


def test_unknown_mapped_column_names_the_available_ones(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(orjson.dumps(good(1)) + b"\n")
    mapping = ColumnMapping(action_type="step", input="prompt", output="answer")
    with pytest.raises(BrightRunError, match=r"no column 'answer' \(mapped: output -> 'answer'\)\. "
                                             r"Its columns are: ts, user_id.*Fix: map"):
        import_log(ws, path, mapping)
    with pytest.raises(BrightRunError, match="no file"):
        import_log(ws, tmp_path / "missing.jsonl")
    with pytest.raises(BrightRunError, match="cannot tell the format"):
        (tmp_path / "log.xlsx").write_bytes(b"x")
        import_log(ws, tmp_path / "log.xlsx")


# -- bad rows by line, per format -------------------------------------------------------------------------


def test_jsonl_bad_rows_are_reported_by_line_and_good_rows_imported(ws: Workspace, tmp_path: Path) -> None:
    rows, expected = mixed_rows()
    lines_out: list[bytes] = [orjson.dumps(r) for r in rows]
    line_of = list(range(1, len(rows) + 1))
    # Row-level damage: inserted after row 3 (a blank line, invalid JSON, a non-object, non-UTF-8 bytes).
    extra = [b"", b'{"step": "frequency_flip", "prompt": "cut off', b"[1, 2]", b'{"step": "\xff\xfe"}']
    lines_out[3:3] = extra
    line_of = line_of[:3] + [n + len(extra) for n in line_of[3:]]
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\n".join(lines_out) + b"\n")
    result = import_log(ws, path)
    check_report(result, line_of, expected)
    row_errors = {e.line: e.reason for e in result.errors if e.field == "row"}
    assert set(row_errors) == {5, 6, 7}  # line 4 is blank: skipped, but counted
    assert "not valid JSON" in row_errors[5] and "JSON array, not an object" in row_errors[6]
    assert "not valid UTF-8" in row_errors[7]
    assert imported_lines(ws, result) == [n for n, e in zip(line_of, expected, strict=True) if e is None]
    # Read in small chunks (lines longer than a chunk included), the same lines are reported.
    small = import_log(ws, path, chunk_bytes=3000)
    assert [str(e) for e in small.errors] == [str(e) for e in result.errors] and small.already_present == 17
    stored = ws.sql("SELECT line, field, source_column, reason, fix FROM import_errors ORDER BY line, field")
    assert stored.height == result.error_count == len(result.errors)
    assert stored.filter(pl.col("line") == 5).select("field", "source_column").row(0) == ("row", "")


def write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> list[int]:
    """Write rows with a header; return the physical line each record starts on."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    starts = []
    for row in rows:
        starts.append(buffer.getvalue().count("\n") + 1)
        writer.writerow(row)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return starts


def test_csv_bad_rows_are_reported_by_line_and_good_rows_imported(ws: Workspace, tmp_path: Path) -> None:
    rows, expected = mixed_rows()
    rows[0]["prompt"] = "a prompt\nover three\nlines, with a comma"  # records and lines differ from here on
    path = tmp_path / "log.csv"
    starts = write_csv(path, rows)
    assert starts[0] == 2 and starts[1] == 5  # the header is line 1
    text = path.read_text(encoding="utf-8").splitlines(keepends=True)
    # A record with too few fields and one with non-UTF-8 bytes, after the multi-line record.
    damaged = "".join(text[:4]) + "final_assembly,only,three\n"
    path.write_bytes(damaged.encode() + b"2025-03-01,u1,s1,step,career,caf\xe9,r,m,1,1,1,up,5,\n"
                     + "".join(text[4:]).encode())
    starts = starts[:1] + [n + 2 for n in starts[1:]]
    result = import_log(ws, path)
    check_report(result, starts, expected)
    row_errors = {e.line: e.reason for e in result.errors if e.field == "row"}
    assert "has 3 fields where the header has 14" in row_errors[5] and "not valid UTF-8" in row_errors[6]
    assert imported_lines(ws, result) == [n for n, e in zip(starts, expected, strict=True) if e is None]
    tsv = tmp_path / "log.tsv"
    write_csv(tsv, [good(1), good(2, rating="9")], delimiter="\t")
    assert [(e.line, e.field) for e in import_log(ws, tsv).errors] == [(3, "rating")]


def test_parquet_bad_rows_are_reported_by_row_number(ws: Workspace, tmp_path: Path) -> None:
    rows, expected = mixed_rows()
    path = tmp_path / "log.parquet"
    pl.DataFrame(rows, schema={c: pl.String for c in COLUMNS}).write_parquet(path)
    result = import_log(ws, path)
    check_report(result, list(range(1, len(rows) + 1)), expected)


def test_parquet_with_native_types(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "native.parquet"
    pl.DataFrame({
        "step": ["frequency_flip", "scene_generation", "final_assembly"], "prompt": ["a", "b", "c"],
        "response": ["x", "y", "z"], "prompt_tokens": [10, -1, 30], "helpful": [True, None, False],
        "rating": [5, None, 2], "created_at": [datetime(2025, 1, 2, 3, 4, 5)] * 3,
    }).write_parquet(path)
    result = import_log(ws, path)
    assert [(e.line, e.field) for e in result.errors] == [(2, "input_tokens")]
    calls = ws.sql("SELECT input_tokens, created_at FROM llm_calls ORDER BY source_line")
    assert calls["input_tokens"].to_list() == [10, 30]
    assert calls["created_at"][0] == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert ws.sql("SELECT helpful, rating FROM feedback ORDER BY rating DESC").rows() == [(True, 5), (False, 2)]


def test_values_are_normalized(ws: Workspace, tmp_path: Path) -> None:
    thumbs = {"true": True, "FALSE": False, "1": True, "0": False, "yes": True, "No": False, "up": True,
              "down": False, "👍": True, "👎": False, "thumbs_up": True}
    stamps = ["2025-03-01T14:05:00Z", "2025-03-01 14:05:00", "2025-03-01T16:05:00+02:00",
              "2025-03-01T14:05:00.000+0000", "1740837900", "1740837900000", "2025-03-01T14:05"]
    rows = [good(i, thumbs=t, ts=stamps[i % len(stamps)], prompt=f"p{i}") for i, t in enumerate(thumbs)]
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows))  # no final newline
    result = import_log(ws, path)
    assert result.errors == [] and result.imported == len(thumbs)
    got = ws.sql("SELECT c.request->>'$.prompt' AS input, f.helpful, c.created_at "
                 "FROM llm_calls c JOIN feedback f ON f.target_id = c.call_id")
    assert dict(zip(got["input"], got["helpful"], strict=True)) == {f"p{i}": v for i, v in enumerate(thumbs.values())}
    assert set(got["created_at"]) == {datetime(2025, 3, 1, 14, 5, tzinfo=UTC)}
    one = ws.sql("SELECT * FROM llm_calls WHERE request->>'$.prompt' = 'p1'").row(0, named=True)
    assert orjson.loads(one["request"]) == {"prompt": "p1"} and one["provider"] == "import"
    assert (one["input_tokens"], one["output_tokens"], one["latency_ms"], one["status"]) == (120, 40, 850.0, "ok")
    assert one["cost_usd"] == pytest.approx((120 * 1.0 + 40 * 5.0) / 1e6)  # claude-haiku-4-5 prices


# -- idempotence and identity -----------------------------------------------------------------------------


def parts(ws: Workspace, table: str) -> int:
    return len(list((ws.root / "tables" / table).glob("*.parquet")))


def test_reimport_adds_nothing(ws: Workspace, tmp_path: Path) -> None:
    rows, _ = mixed_rows()
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    first = import_log(ws, path)
    counts = [ws.scalar(f"SELECT count(*) FROM {t}") for t in ("llm_calls", "feedback", "import_errors")]
    files = [parts(ws, t) for t in ("llm_calls", "feedback", "import_errors")]
    again = import_log(ws, path)
    assert again.import_id == first.import_id == "log-" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert (again.new_calls, again.already_present, again.new_feedback, again.updated_feedback) == \
        (0, first.imported, 0, 0)
    assert again.nothing_new and again.bad_rows == first.bad_rows
    assert [ws.scalar(f"SELECT count(*) FROM {t}") for t in ("llm_calls", "feedback", "import_errors")] == counts
    assert [parts(ws, t) for t in ("llm_calls", "feedback", "import_errors")] == files  # not even a new file


def test_reexported_file_in_another_order_and_format_adds_nothing(ws: Workspace, tmp_path: Path) -> None:
    rows = [good(i) for i in range(40)]
    jsonl = tmp_path / "log.jsonl"
    jsonl.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    first = import_log(ws, jsonl, chunk_bytes=1500)  # many chunks
    assert first.new_calls == 40
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    for row in shuffled:  # the same instants, written another way
        row["ts"] = row["ts"].replace("Z", "+00:00").replace("T", " ")
    csv_path = tmp_path / "export-2.csv"
    write_csv(csv_path, shuffled)
    again = import_log(ws, csv_path)
    assert again.import_id != first.import_id
    assert (again.new_calls, again.already_present, again.new_feedback) == (0, 40, 0)
    assert ws.scalar("SELECT count(*) FROM llm_calls") == 40
    # Feedback given later: the same call, its feedback updated (latest wins), nothing else added.
    shuffled[0]["rating"], shuffled[0]["thumbs"] = "2", "down"
    write_csv(csv_path, shuffled)
    later = import_log(ws, csv_path)
    assert (later.new_calls, later.updated_feedback + later.new_feedback) == (0, 1)
    target = ws.sql("SELECT call_id FROM llm_calls WHERE request->>'$.prompt' = ?", [shuffled[0]["prompt"]]).item()
    assert ws.sql("SELECT helpful, rating FROM feedback_latest WHERE target_id = ?", [target]).row(0) == (False, 2)


def test_duplicates_within_a_file_are_one_call(ws: Workspace, tmp_path: Path) -> None:
    rows = [good(1), good(2), good(1), good(3), good(2)]
    path = tmp_path / "dup.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    result = import_log(ws, path, chunk_bytes=600)
    assert (result.imported, result.new_calls, result.duplicates_in_file) == (5, 3, 2)
    assert ws.scalar("SELECT count(*) FROM llm_calls") == 3


def test_feedback_rows_have_deterministic_ids(ws: Workspace, tmp_path: Path) -> None:
    rows = [good(1, rating="4", feedback="Loved it"), good(2, user_id="", thumbs="down"),
            good(3, user_id="", session_id="", thumbs="", rating="", feedback="meh"), good(4, thumbs="", rating="")]
    path = tmp_path / "fb.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    result = import_log(ws, path)
    assert (result.feedback_rows, result.new_feedback) == (3, 3)
    fb = ws.sql("SELECT f.* FROM feedback f JOIN llm_calls c ON c.call_id = f.target_id ORDER BY c.request")
    assert fb["feedback_id"].to_list() == ["fb-" + t for t in fb["target_id"]]
    assert fb["target_type"].unique().to_list() == ["llm_call"]
    assert fb["source"].unique().to_list() == [f"import:{result.import_id}"]
    assert fb["reviewer"].to_list() == ["app:u1", "app:s0", "app:anonymous"]
    assert fb.select("helpful", "rating", "comment").rows() == [(True, 4, "Loved it"), (False, None, None),
                                                                (None, None, "meh")]
    assert fb["created_at"][0] == datetime(2025, 3, 1, 10, 1, tzinfo=UTC)
    # A fresh workspace importing the same rows makes the same ids.
    other = Workspace.open(tmp_path / "other")
    import_log(other, path)
    assert sorted(other.sql("SELECT feedback_id FROM feedback")["feedback_id"]) == sorted(fb["feedback_id"])
    ids = "SELECT call_id FROM llm_calls ORDER BY 1"
    assert other.sql(ids).equals(ws.sql(ids))


# -- which files the app may read -----------------------------------------------------------------------------

def test_the_app_reads_logs_only_inside_the_allowed_folders(ws: Workspace, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("BRIGHTRUN_IMPORT_DIRS", raising=False)
    inside = ws.root / "imports" / "exports" / "calls.jsonl"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(orjson.dumps(good(1)) + b"\n")
    secret = tmp_path / "elsewhere" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text("action_type,input,output\nx,y,z\n")
    (ws.root / "imports" / "link.csv").symlink_to(secret)  # a symlink inside leading outside
    (ws.root / "imports" / "uploads").mkdir()
    (ws.root / "imports" / "uploads" / "up.csv").symlink_to(inside)  # a symlink that stays inside

    assert allowed_log_path(ws, "exports/calls.jsonl") == inside.resolve()
    assert allowed_log_path(ws, inside) == inside.resolve()
    assert allowed_log_path(ws, "uploads/up.csv") == inside.resolve()
    for outside in ["link.csv", "../../elsewhere/secret.csv", f"{ws.root}/imports/../../elsewhere/secret.csv",
                    secret, "/etc/passwd", ws.root / "tables"]:
        with pytest.raises(BrightRunError, match=r"reads logs only from .*Fix: copy the file into") as caught:
            allowed_log_path(ws, outside)
        if "secret" in str(outside) or outside == "link.csv":
            assert f"leads to {secret.resolve()}" in str(caught.value)
    with pytest.raises(BrightRunError, match="no file nothing.csv .*Fix:"):
        allowed_log_path(ws, "nothing.csv")
    listed = list_log_files(ws)
    assert sorted(p.name for p in listed) == ["calls.jsonl", "up.csv"]  # not the symlink leading out

    # A folder the operator adds is allowed, with its own symlinks resolved the same way.
    monkeypatch.setenv("BRIGHTRUN_IMPORT_DIRS", str(secret.parent))
    assert allowed_log_path(ws, secret) == secret.resolve()
    assert allowed_log_path(ws, "link.csv") == secret.resolve()
    assert secret in list_log_files(ws)
    with pytest.raises(BrightRunError, match="reads logs only from"):
        allowed_log_path(ws, secret.parent / ".." / "other.csv")


# -- personal data ------------------------------------------------------------------------------------------

PLANTED = {
    "email": ["Write to jane.doe+coach@example.co.uk today.", "MARK@EXAMPLE.COM and ann_lee@mail.example.org"],
    "phone": ["Call +1 (415) 555-0132 please.", "my cell 415-555-0199", "UK office +44 20 7946 0958",
              "home 020 7946 0958 or (212) 555 0100", "text 4155550132", "1-800-555-0100 toll free"],
    "card": ["card 4111 1111 1111 1111 declined", "use 5555-5555-5555-4444", "amex 378282246310005"],
    "account": ["IBAN DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "my account number is 12345678",
                "routing: 021000021", "ref 1234567890123"],
    "ip": ["from 192.168.1.20 at night", "server 10.0.0.1 and 2001:db8::1", "fe80::1ff:fe23:4567:890a"],
    "street_address": ["we moved to 221B Baker Street, Apt 4", "office at 1600 Amphitheatre Parkway",
                       "meet me at 42 W 42nd St."],
}
EXPECTED = {"email": 3, "phone": 7, "card": 3, "account": 5, "ip": 4, "street_address": 3}
PROSE = [
    "Save $250,000 at 6.5% in 2031.",
    "On 2024-05-01 at 10:30:45 I paid 1,250,000 over 30 years, about 3.5% of income.",
    "From 9:00 to 17:30 on 12/31/2031; version 2.1.0; 2020-2025; ages 35-40; 15% of $4,500.00.",
    "Pay off $8,400 of debt by 2027, then put 10% into my 401(k) and keep 6 months in savings.",
    "Take into account 3 months of expenses; my savings account grew 12% this year.",
    "Week 12: walk 30 minutes. By day 45, run a 10k. Score 4/5, 100,000 steps, 1.5x faster, room 101.",
    "The 3 of us drove 250 miles down the road on the way to the Lake District in 2019.",
]


def test_each_kind_is_detected_with_its_count_and_redacted() -> None:
    for kind, texts in PLANTED.items():
        found = {k: 0 for k in EXPECTED}
        for text in texts:
            counts = detect(text)
            assert counts[kind] >= 1, (kind, text, counts)
            found = {k: found[k] + counts[k] for k in found}
            cleaned = redact(text)
            assert detect(cleaned) == dict.fromkeys(EXPECTED, 0), cleaned
            assert "[" in cleaned and cleaned.count("[") == sum(counts.values())
        assert found == {k: (EXPECTED[kind] if k == kind else 0) for k in found}, kind
    assert redact("mail jane@x.io, card 4111111111111111, IP 10.1.2.3, call 415-555-0132, at 5 Elm Street.") == \
        "mail [EMAIL], card [CARD], IP [IP], call [PHONE], at [ADDRESS]."
    assert redact("my account number is 12345678") == "my account number is [ACCOUNT]"
    text = " ".join(t for texts in PLANTED.values() for t in texts)
    assert redact_counted(text) == (redact(text), detect(text)) and detect(text) == EXPECTED


def test_near_misses_and_ordinary_prose_are_untouched() -> None:
    near = ["4111 1111 1111 1112 fails Luhn", "version 1.2.3",
            "time 10:30:00", "ratio 3:2", "555-0132 has no area code", "2025-03-01T14:05:00Z", "call me at five"]
    for text in [*PROSE, *near]:
        assert detect(text) == dict.fromkeys(EXPECTED, 0), (text, detect(text))
        assert redact(text) == text
    assert redact(None) is None and redact("") == ""


def test_column_functions_agree_with_detect_and_redact() -> None:
    texts = [t for texts in PLANTED.values() for t in texts] + PROSE + [None, "", "plain"]
    frame = pl.DataFrame({"a": texts, "b": list(reversed(texts))})
    counts = pii_counts(frame, ["a", "b"])
    for column in ("a", "b"):
        for kind in EXPECTED:
            row = counts.filter((pl.col("column") == column) & (pl.col("kind") == kind)).row(0, named=True)
            assert row["count"] == sum(detect(t)[kind] for t in texts if t) == EXPECTED[kind]
            assert row["rows"] == sum(1 for t in texts if t and detect(t)[kind])
    assert redact_series(frame["a"]).to_list() == [redact(t) for t in texts]
    redacted = redact_frame(frame, ["a"])
    assert redacted["b"].equals(frame["b"]) and redacted["a"].to_list() == [redact(t) for t in texts]


def test_import_counts_personal_data_per_column(ws: Workspace, tmp_path: Path) -> None:
    summary = build_coaching_log(tmp_path / "coach.jsonl", rows=1500, seed=7, pii_rate=0.02)
    result = import_log(ws, summary.path)
    assert result.pii["prompt"] == {k: summary.planted_pii.get(k, 0) for k in EXPECTED}
    assert all(n > 0 for n in result.pii["prompt"].values())  # every kind planted at least once
    assert sum(result.pii["response"].values()) == 0 and sum(result.pii["feedback"].values()) == 0
    # Redacting the imported text leaves none of it.
    calls = ws.sql("SELECT request, response FROM llm_calls")
    prompts = pl.Series([orjson.loads(r)["prompt"] for r in calls["request"]])
    clean = redact_series(prompts)
    assert pii_counts(pl.DataFrame({"p": clean}), ["p"])["count"].sum() == 0
    assert not clean.str.contains("@example.com").any() and not clean.str.contains("4111 1111").any()


# -- the demo log, the CLI ----------------------------------------------------------------------------------


def test_coaching_log_is_deterministic_and_has_its_bad_rows(tmp_path: Path, ws: Workspace) -> None:
    a = build_coaching_log(tmp_path / "a.jsonl", rows=400, seed=5)
    b = build_coaching_log(tmp_path / "b.jsonl", rows=400, seed=5)
    assert a.path.read_bytes() == b.path.read_bytes() and len(a.bad_rows) == 7
    result = import_log(ws, a.path)
    assert {e.line for e in result.errors} == set(a.bad_rows) and result.imported == 393
    assert 0.3 < result.feedback_rows / 393 < 0.5


def test_demo_has_the_coaching_log(demo_ws: Workspace) -> None:
    calls = demo_ws.sql("SELECT action_type, count(*) AS n FROM llm_calls WHERE provider = 'import' GROUP BY 1")
    assert set(calls["action_type"]) == set(STEPS) and calls["n"].sum() >= 550
    fb = demo_ws.sql("SELECT helpful, rating, comment FROM feedback WHERE starts_with(source, 'import:')")
    assert 0.3 < fb.height / calls["n"].sum() < 0.5
    assert fb.filter(pl.col("helpful").not_() & (pl.col("rating") == 5)).height >= 1  # thumbs down, rated 5
    assert fb["comment"].drop_nulls().len() > 0 and fb["rating"].drop_nulls().len() > 0
    assert demo_ws.scalar("SELECT count(*) FROM import_errors") == 7
    assert demo_ws.scalar("SELECT count(*) FROM llm_calls WHERE user_id IS NULL AND provider = 'import'") == 0


def test_cli_import_log(tmp_path: Path) -> None:
    ws_path = str(tmp_path / "ws")
    rows, _ = mixed_rows()
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows[:-1])
                     + orjson.dumps(good(5, prompt="email me at ann@example.com")) + b"\n")
    result = runner.invoke(app, ["import-log", str(path), "-w", ws_path])
    assert result.exit_code == 0, result.output
    assert "line 4: prompt: the input is empty. Fix:" in result.output
    assert "16 bad" in result.output and "prompt: email 1" in result.output
    again = runner.invoke(app, ["import-log", str(path), "-w", ws_path, "--json"])
    data = orjson.loads(again.stdout)
    assert again.exit_code == 0 and data["new_calls"] == 0 and data["already_present"] == 17
    assert data["errors"][0]["line"] == 2 and len(data["errors"]) == 16
    # Other column names, mapped by hand.
    renamed = tmp_path / "renamed.csv"
    renamed.write_text("kind_of_call,asked,said,stars\nfrequency_flip,hi,hello,5\nfrequency_flip,hi,,4\n")
    mapped = runner.invoke(app, ["import-log", str(renamed), "-w", ws_path, "--map", "action_type=kind_of_call",
                                 "--map", "input=asked", "--map", "output=said", "--json"])
    assert mapped.exit_code == 0, mapped.output
    data = orjson.loads(mapped.stdout)
    assert (data["new_calls"], data["new_feedback"], data["errors"][0]["line"]) == (1, 1, 3)
    missing = runner.invoke(app, ["import-log", str(renamed), "-w", ws_path, "--map", "output=nope"])
    assert missing.exit_code != 0 and "no column 'nope'" in str(missing.exception)
    all_bad = tmp_path / "bad.jsonl"
    all_bad.write_text('{"step": "x", "prompt": "p", "response": ""}\nnot json\n')
    failed = runner.invoke(app, ["import-log", str(all_bad), "-w", ws_path])
    assert failed.exit_code == 1 and "No row could be imported" in failed.output


def test_uploads_are_kept_safely_and_imports_listed(ws: Workspace) -> None:
    data = b"\xef\xbb\xbf" + orjson.dumps(good(1, user_id="jane@example.com")) + b"\n"  # with a byte-order mark
    path = save_upload(ws, "../../etc/app log (1).JSONL", data)
    assert path.parent == ws.root / "imports" / "uploads" and path.name.endswith("-app_log_1_.JSONL")
    assert save_upload(ws, "../../etc/app log (1).JSONL", data) == path
    with pytest.raises(BrightRunError, match="upload a .jsonl"):
        save_upload(ws, "log.exe", b"x")
    result = import_log(ws, path)
    assert result.imported == 1 and result.errors == []
    assert result.pii["user_id"]["email"] == 1  # an e-mail address used as the user id is personal data too
    listed = list_imports(ws)
    assert [r["import_id"] for r in listed] == [result.import_id] and listed[0]["new_calls"] == 1
