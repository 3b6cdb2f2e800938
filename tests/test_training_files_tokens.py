"""Exact token counts for OpenAI targets (tiktoken, offline), the calibrated estimate elsewhere, each
labelled; an export counts each text once for its validator and its cost estimate."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

import brightrun.training_files as tf
from brightrun.cli.main import app
from brightrun.exports import tokens
from brightrun.exports.base import ExportError
from brightrun.exports.tokens import TokenCounter, counter_for

# Counted once with tiktoken 0.14.0 (o200k_base: 22 tokens, cl100k_base: 25) and hard-coded here.
TEXT = "What's the capital of France? Internationalization costs $1,234.56 — naïve café 日本語."


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty tiktoken cache: a vocabulary can only come from the installed packages."""
    import tiktoken.load

    def no_network(blobpath: str) -> bytes:
        raise AssertionError(f"tiktoken tried to download {blobpath}")
    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty-tiktoken-cache"))
    tokens.tiktoken_counter.cache_clear()
    yield
    tokens.tiktoken_counter.cache_clear()


def test_openai_models_are_counted_exactly_without_network(offline):
    gpt4o = counter_for("gpt-4o-mini-2024-07-18")
    assert gpt4o.exact and gpt4o.name == "tiktoken:o200k_base" and gpt4o.label == "exact (tiktoken o200k_base)"
    assert gpt4o(TEXT) == 22
    assert counter_for("ft:gpt-4.1-mini-2025-04-14:org::abc")(TEXT) == 22
    gpt35 = counter_for("gpt-3.5-turbo-0125")
    assert gpt35.label == "exact (tiktoken cl100k_base)" and gpt35(TEXT) == 25
    assert tokens.estimate_tokens(TEXT) != 22  # the estimate is another figure
    for other in ("anthropic.claude-3-haiku-20240307-v1:0", "gemini-2.5-flash", None):
        assert counter_for(other).label == "estimated" and not counter_for(other).exact
    assert counter_for("gpt-4o-mini", exact=False).label == "estimated"


def test_a_vocabulary_that_is_not_tiktokens_is_refused(offline, monkeypatch):
    text, ranks = tokens.bundled_vocabulary("o200k_base")
    monkeypatch.setattr(tokens, "bundled_vocabulary", lambda encoding: (text + b"AA== 200000\n", ranks))
    with pytest.raises(ExportError, match="not the one tiktoken pins.*Fix:"):
        tokens.tiktoken_counter("o200k_base")


def test_once_counts_each_distinct_text_once():
    calls: list[str] = []
    once = TokenCounter("words", True, lambda text: calls.append(text) or len(text.split())).once()
    assert [once(t) for t in ("a b", "c", "a b", "c", "a b c")] == [2, 1, 2, 1, 3]
    assert calls == ["a b", "c", "a b c"] and once.label == "exact (words)"


def _members(ws, n: int) -> list[str]:
    return ws.sql("SELECT conversation_id FROM conversations WHERE enrichment_status = 'completed' "
                  "ORDER BY conversation_id LIMIT ?", [n])["conversation_id"].to_list()


def _cookbook(enc, path: Path) -> list[int]:
    """The cookbook's count of each example of a JSONL file, with the encoding itself."""
    out = []
    for line in path.read_bytes().splitlines():
        messages = orjson.loads(line)["messages"]
        out.append(3 + sum(3 + sum(len(enc.encode_ordinary(v)) for v in m.values() if isinstance(v, str))
                           for m in messages))
    return out


def test_openai_exports_count_exactly_once_and_say_so_other_formats_estimate(offline, demo_copy, tmp_path,
                                                                            monkeypatch):
    from brightrun.training_files import export as tf_export

    ws = demo_copy
    tf.create_training_file(ws, "tok")
    tf.add_conversations(ws, "tok", _members(ws, 30))
    counted: list[str] = []
    real = tf_export.counter_for

    def spy(model):
        found = real(model)
        return TokenCounter(found.name, found.exact, lambda text: counted.append((found.name, text)) or found(text))
    monkeypatch.setattr(tf_export, "counter_for", spy)
    done = tf_export.export_version(ws, "tok", "openai_sft", tmp_path / "openai", force_reason="test")
    stats = done.validation.stats
    assert stats["token_method"] == "tiktoken:o200k_base" and stats["exact_tokens"] is True
    train_file = tmp_path / "openai" / "data" / "train.jsonl"
    train = {name: sum(_cookbook(tokens.offline_encoding(name), train_file)) for name in ("o200k_base", "cl100k_base")}
    assert stats["splits"]["train"]["total_tokens"] == train["o200k_base"]
    # the OpenAI targets priced by default all count with o200k_base, so only that tokenizer runs: gpt-3.5-turbo
    # (cl100k_base) is priced only when named
    by_model = {c.model: c for c in done.costs}
    assert len(by_model) == 5 and not any(m.startswith("gpt-3.5") for m in by_model)
    for model, c in by_model.items():
        assert c.token_counts == "exact (tiktoken o200k_base)" and c.billing_tokens == train["o200k_base"], model
    # the validator and the cost estimate share the counts: every distinct text tokenized once
    assert counted and len(counted) == len(set(counted)) and {n for n, _ in counted} == {"tiktoken:o200k_base"}
    named = tf_export.export_version(ws, "tok", "openai_sft", tmp_path / "named", force_reason="test",
                                     models=["gpt-3.5-turbo-0125", "gpt-4o-mini-2024-07-18"])
    assert [(c.model, c.token_counts, c.billing_tokens) for c in named.costs] == [
        ("gpt-3.5-turbo-0125", "exact (tiktoken cl100k_base)", train["cl100k_base"]),
        ("gpt-4o-mini-2024-07-18", "exact (tiktoken o200k_base)", train["o200k_base"])]
    meta = orjson.loads((tmp_path / "openai" / "brightrun_export.json").read_bytes())
    assert meta["token_counts"] == "exact (tiktoken o200k_base)"
    assert {c["model"]: c["token_counts"] for c in meta["costs"]} == {m: c.token_counts for m, c in by_model.items()}

    vertex = tf_export.export_version(ws, "tok", "vertex", tmp_path / "vertex", force_reason="test")
    assert vertex.validation.stats["exact_tokens"] is False
    assert vertex.costs and {c.token_counts for c in vertex.costs} == {"estimated"}
    assert orjson.loads((tmp_path / "vertex" / "brightrun_export.json").read_bytes())["token_counts"] == "estimated"


def test_the_cli_labels_the_counts(offline, demo_copy, tmp_path):
    path = str(demo_copy.root)
    runner = CliRunner()
    assert runner.invoke(app, ["training-file", "create", "t", "-w", path]).exit_code == 0
    ids = [a for i in _members(demo_copy, 12) for a in ("--id", i)]
    assert runner.invoke(app, ["training-file", "add", "t", "-w", path, *ids]).exit_code == 0
    openai = runner.invoke(app, ["training-file", "export", "t", "openai_sft", str(tmp_path / "o"), "-w", path,
                                 "--force", "test"])
    assert "token counts: exact (tiktoken o200k_base)" in openai.stdout, openai.output
    assert "charged tokens (exact (tiktoken o200k_base))" in openai.stdout and "gpt-3.5" not in openai.stdout
    named = runner.invoke(app, ["training-file", "export", "t", "openai_sft", str(tmp_path / "n"), "-w", path,
                                "--force", "test", "--price", "gpt-3.5-turbo-0125"])
    assert "gpt-3.5-turbo-0125: " in named.stdout and "(exact (tiktoken cl100k_base))" in named.stdout, named.output
    trl = runner.invoke(app, ["training-file", "export", "t", "trl_sft", str(tmp_path / "t"), "-w", path,
                              "--force", "test", "--json"])
    assert orjson.loads(trl.stdout)["token_counts"] == "estimated"


def test_sft_exports_check_leakage_with_the_training_files_groups_not_a_new_clustering(demo_copy, tmp_path,
                                                                                       monkeypatch):
    from brightrun.exports import checks
    from brightrun.training_files import export as tf_export
    from brightrun.workspace import utcnow

    ws = demo_copy
    tf.create_training_file(ws, "leak")
    v = tf.add_conversations(ws, "leak", _members(ws, 30))

    def no_clustering(*args, **kwargs):
        raise AssertionError("an SFT export clustered its records again")
    monkeypatch.setattr(checks, "near_duplicate_clusters", no_clustering)
    clean = tf_export.export_version(ws, "leak", "openai_sft", tmp_path / "clean", force_reason="test")
    assert "leakage_near_duplicate" not in clean.validation.rules()
    # a group that straddles train and test (as recorded in the membership rows) is reported
    train = next(c for c in v.member_ids if v.split_of[c] == "train")
    held = next(c for c in v.member_ids if v.split_of[c] == "test")
    ws.append("training_file_conversations", [
        {"name": "leak", "version": v.version, "conversation_id": c, "split": v.split_of[c], "tier": "template",
         "arc_key": "x", "cluster": train, "created_at": utcnow()} for c in (train, held)])
    leaky = tf_export.export_version(ws, "leak", "openai_sft", tmp_path / "leaky", force_reason="test")
    found = [w for w in leaky.validation.warnings if w.rule == "leakage_near_duplicate"]
    assert [(w.record_id, Path(w.file).name) for w in found] == [(held, "test.jsonl")]
    assert train in found[0].message and found[0].line >= 1 and "Fix" not in found[0].message
    assert leaky.validation.counts["leakage_near_duplicate"] == 1


def test_counting_ahead_in_two_processes_gives_the_same_export(demo_copy, tmp_path, monkeypatch):
    """With two cores every distinct text is counted in a worker process while the writer writes: the files, the
    token statistics and the costs are those of counting as asked; with one core nothing is counted ahead."""
    from brightrun.training_files import export as tf_export
    from brightrun.training_files import token_pool

    ws = demo_copy
    tf.create_training_file(ws, "ahead")
    tf.add_conversations(ws, "ahead", _members(ws, 30))
    ahead: list[int] = []
    real = token_pool.start_counting

    def spy(*args, **kwargs):
        started = real(*args, **kwargs)
        ahead.append(started.texts)
        return started
    monkeypatch.setattr(tf_export, "start_counting", spy)
    monkeypatch.setattr(token_pool, "default_workers", lambda: 1)
    plain = tf_export.export_version(ws, "ahead", "openai_sft", tmp_path / "plain", force_reason="test")
    assert ahead == [0]
    monkeypatch.setattr(token_pool, "default_workers", lambda: 2)
    monkeypatch.setattr(token_pool, "AHEAD_TEXTS", 1)
    counted, real_map = [], token_pool.map_ordered
    monkeypatch.setattr(token_pool, "map_ordered", lambda *a, **k: counted.append(a[2]) or real_map(*a, **k))
    two = tf_export.export_version(ws, "ahead", "openai_sft", tmp_path / "two", force_reason="test")
    assert ahead[1] > 300 and counted == [1]  # every distinct text of 30 conversations, in a process beside
    assert two.validation.stats == plain.validation.stats and two.validation.ok
    assert [(c.model, c.billing_tokens, c.cost_usd) for c in two.costs] == [
        (c.model, c.billing_tokens, c.cost_usd) for c in plain.costs]
    for split in ("train", "validation", "test"):
        assert (tmp_path / "two" / "data" / f"{split}.jsonl").read_bytes() == \
            (tmp_path / "plain" / "data" / f"{split}.jsonl").read_bytes()


def test_counting_ahead_fills_the_shared_counts_with_the_counters_own_figures():
    from brightrun.training_files import token_pool

    counter = counter_for("gpt-4o-mini-2024-07-18")
    once = counter.once()
    records = [{"id": f"r{k}", "split": "train", "messages": [
        {"role": "user", "content": f"question {k} {TEXT}"}, {"role": "assistant", "content": f"answer {k}"}]}
        for k in range(40)]
    token_pool.AHEAD_TEXTS, saved = 1, token_pool.AHEAD_TEXTS
    try:
        assert token_pool.start_counting(records, "sft", once, "gpt-4o-mini-2024-07-18", workers=2).wait() == 82
    finally:
        token_pool.AHEAD_TEXTS = saved
    texts = ["user", "assistant"] + [m["content"] for r in records for m in r["messages"]]
    assert {(hash(t), len(t)): counter(t) for t in texts} == once.known
    assert token_pool.start_counting(records, "sft", once, "gpt-4o-mini-2024-07-18", workers=2).wait() == 0  # all known
    assert token_pool.start_counting(records, "sft", counter, "gpt-4o-mini-2024-07-18", workers=2).wait() == 0  # no cache


def test_counting_in_the_background_hands_its_failure_to_the_waiter(monkeypatch):
    """The counts arrive only at wait(), which re-raises what went wrong in the worker processes (nothing is
    filled in then), so an export never validates with half its counts silently made another way."""
    from brightrun.training_files import token_pool

    once = counter_for("gpt-4o-mini-2024-07-18").once()
    records = [{"id": f"r{k}", "split": "train", "messages": [
        {"role": "user", "content": f"question {k} {TEXT}"}, {"role": "assistant", "content": f"answer {k}"}]}
        for k in range(40)]
    monkeypatch.setattr(token_pool, "AHEAD_TEXTS", 1)
    started = token_pool.start_counting(records, "sft", once, "gpt-4o-mini-2024-07-18", workers=2)
    assert started.texts == 82 and not once.known  # nothing is filled in before wait()
    assert started.wait() == 82 and len(once.known) == 82

    def broken(*args, **kwargs):
        raise RuntimeError("worker died")
        yield
    monkeypatch.setattr(token_pool, "map_ordered", broken)
    fresh = counter_for("gpt-4o-mini-2024-07-18").once()
    failing = token_pool.start_counting(records, "sft", fresh, "gpt-4o-mini-2024-07-18", workers=2)
    with pytest.raises(RuntimeError, match="worker died"):
        failing.wait()
    assert not fresh.known


def test_the_validator_and_the_estimate_wait_for_counts_made_elsewhere_before_counting(tmp_path):
    """settle() runs what is pending once, before the first count: the validator after its shape checks and
    digests, the estimate before its sums (a count made before it would be made twice)."""
    from brightrun.exports import estimate_all
    from brightrun.exports.openai_ft import validate_openai_sft, write_openai_sft

    records = [{"id": f"r{k}", "split": "train" if k < 12 else "validation", "messages": [
        {"role": "user", "content": f"question {k} {TEXT}"}, {"role": "assistant", "content": f"answer {k}"}]}
        for k in range(14)]
    paths = write_openai_sft(records, tmp_path / "out")
    once = counter_for("gpt-4o-mini-2024-07-18").once()
    seen: list[tuple[str, int]] = []
    once.pending.append(lambda: seen.append(("validator", len(once.known))))
    result = validate_openai_sft(paths, counter=once)
    assert result.ok and seen == [("validator", 0)] and not once.pending
    counted = len(once.known)
    once.pending.append(lambda: seen.append(("estimate", len(once.known))))
    (cost,) = estimate_all(records, ["gpt-4o-mini-2024-07-18"], counter=once)
    assert seen[-1] == ("estimate", counted) and cost.billing_tokens > 0
