"""Benchmark: enrichment and duplicate detection of 100,000 conversations on one core.

The issue asks for
  (a) enrichment of 100,000 conversations on one core, in conversations per second, against a naive
      baseline that reads each conversation as its own JSON document and builds pairs in plain Python
      (the way the source system did it), printed as a ratio in the same run;
  (b) near-duplicate detection over 100,000 conversations, time and memory.

What runs, each stage in its own child process (pinned to the same core) so that its time and
memory are its own:

  build      a scripted workspace of N conversations (as bench_workspace.py builds it), or the one in
             --workspace if it already holds conversations. Not part of any ratio
  export     every conversation written as its own JSON document (its metadata and its list of
             turns, as the source system stored them), plus the scaffolding the source kept as JSON.
             Not timed for the ratio
  naive      the baseline: for each document, json.load, normalize and validate the turns, build the
             enriched training pairs in plain Python dicts (history, current client input, emotional
             context with brightrun.enrichment.emotions.detect, the arc stage, quality scores with
             brightrun.quality.scoring.score_response, word counts, the conversation's quality and
             arc adherence) and write one enriched JSON document per conversation
  enrich     BrightRun: `enrich(ws, force=True)` (reads the tables, writes training_pairs,
             conversation_quality and statuses, compacts them)
  verify     both made the same number of pairs with the same totals (quality, valence, words), and a
             spot check of pairs field by field
  near       `near_duplicate_clusters(conversation_texts(ws))` over every conversation
  exact      `exact_duplicates(conversation_texts(ws))`
  pool_enrich, pool_report (--workers-compare, instead of every stage above but build): enrich(force=True)
             and build_quality_report with 1 worker, then 2 (the process pool of brightrun/workspace/pool.py),
             on two cores; the same rows and report both times (a digest of each), the load average around
             each. Peak RSS is the parent's only (the workers are separate processes)
  allpairs   the duplicate baseline: exact Jaccard over word 3-shingles of every pair of an evenly
             spaced sample (default 2,000 conversations), its n^2 extrapolation to all, and the
             recall and precision of LSH on the same sample against that exact answer

Memory: every child reports VmHWM (its own peak resident memory; ru_maxrss would inherit the peak of
the parent that started it) for the timed part only (the peak is reset after the imports and
setup), and the resident memory when the timed part started.

Run:  .venv/bin/python bench/bench_enrichment.py --conversations 100000 [--json] [--keep]
      .venv/bin/python bench/bench_enrichment.py --conversations 20000 --workers-compare
"""

from __future__ import annotations

import os

# Pin to one core before polars, duckdb or pyarrow start their thread pools (children inherit it). The
# --workers-compare stages run on the cores BRIGHTRUN_BENCH_CPUS lists (their parent sets it: "0,1").
CPU = int(os.environ.get("BRIGHTRUN_BENCH_CPU", "0"))
os.sched_setaffinity(0, {int(c) for c in os.environ.get("BRIGHTRUN_BENCH_CPUS", str(CPU)).split(",")})

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import unicodedata  # noqa: E402
from datetime import UTC, date, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import (  # noqa: E402
    MEMORY_BUDGET_KIB,
    build_scripted_workspace,
    disk_bytes,
    hwm_kib,
    mib,
    reset_hwm,
    rss_now_kib,
)

from brightrun.enrichment import emotions  # noqa: E402 - only re; the naive baseline uses it
from brightrun.quality import scoring  # noqa: E402 - only re and numpy

BEFORE_COMMIT = "69ea1142f384d6f72b742557cffa456d6200b8da"
"""The last commit with the datasketch implementation of near_duplicate_clusters (--before-duplicates)."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def evenly_spaced(items: list, count: int) -> list:
    """`count` items at even steps over the list (all of them if count is 0 or too big)."""
    if count <= 0 or count >= len(items):
        return list(items)
    step = len(items) / count
    return [items[int(k * step)] for k in range(count)]


class Timer:
    """Resets the memory peak, then times a block; `result()` adds the time and memory figures."""

    def __enter__(self) -> Timer:
        self.setup_peak_kib = hwm_kib()
        self.rss_start_kib = rss_now_kib()
        self.reset = reset_hwm()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        self.peak_kib = hwm_kib()

    def result(self, **extra: Any) -> dict[str, Any]:
        return {"seconds": self.seconds, "peak_rss_kib": self.peak_kib, "rss_start_kib": self.rss_start_kib,
                "setup_peak_kib": self.setup_peak_kib, "peak_reset": self.reset, **extra}


# == child stages ===================================================================================


def open_ws(args: argparse.Namespace):
    from brightrun.workspace import Workspace

    return Workspace.open(args.workspace, threads=1)


def stage_build(args: argparse.Namespace) -> dict[str, Any]:
    ws = open_ws(args)
    existing = ws.scalar("SELECT count(*) FROM conversations")
    enriched = ws.scalar("SELECT count(*) FROM training_pairs")
    if existing:
        log(f"  reusing {existing:,} conversations in {args.workspace} ({enriched:,} training pairs already there)")
        return {"built": False, "conversations": int(existing), "pairs_before": int(enriched)}
    with Timer() as t:
        build = build_scripted_workspace(ws, args.conversations, job_id="bench", note="bench_enrichment")
    n = int(ws.scalar("SELECT count(*) FROM conversations"))
    return t.result(built=True, conversations=n, pairs_before=0, create_seconds=build.create_seconds,
                    run_seconds=build.run_seconds, failed=build.failed, status=build.status,
                    disk_bytes=disk_bytes(Path(args.workspace)))


def stage_export(args: argparse.Namespace) -> dict[str, Any]:
    """Every conversation as its own JSON document, and the scaffolding as one JSON document."""
    ws = open_ws(args)
    docs = Path(args.docs)
    folder = docs / "conversations"
    folder.mkdir(parents=True, exist_ok=True)
    s = ws.scaffolding
    (docs / "scaffolding.json").write_text(json.dumps({
        "consultant": s.consultant.model_dump(mode="json"),
        "personas": {k: p.model_dump(mode="json") for k, p in s.personas.items()},
        "arcs": {k: a.model_dump(mode="json") for k, a in s.arcs.items()},
        "topics": {k: t.model_dump(mode="json") for k, t in s.topics.items()},
    }))
    ids = ws.sql("SELECT conversation_id FROM conversations ORDER BY conversation_id")["conversation_id"].to_list()
    written = size = 0
    with Timer() as t:
        for start in range(0, len(ids), 10_000):
            chunk = ids[start:start + 10_000]
            meta = ws.sql("SELECT * FROM conversations WHERE conversation_id IN (SELECT unnest(?)) "
                          "ORDER BY conversation_id", [chunk])
            turns = ws.sql("SELECT conversation_id, turn_number, role, content FROM turns "
                           "WHERE conversation_id IN (SELECT unnest(?)) ORDER BY conversation_id, turn_number",
                           [chunk])
            by_id: dict[str, list[dict]] = {}
            for row in turns.iter_rows(named=True):
                by_id.setdefault(row.pop("conversation_id"), []).append(row)
            for row in meta.iter_rows(named=True):
                doc = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
                doc["turns"] = by_id.get(row["conversation_id"], [])
                text = json.dumps(doc, ensure_ascii=False)
                (folder / f"{row['conversation_id']}.json").write_text(text, encoding="utf-8")
                written += 1
                size += len(text.encode())
            log(f"  exported {min(start + 10_000, len(ids)):,} / {len(ids):,}")
    return t.result(documents=written, bytes=size)


# -- the naive baseline: the source system's way, in plain Python ---------------------------------

ROLE_ALIASES = {"client": "user", "human": "user", "customer": "user", "advisor": "assistant",
                "ai": "assistant", "bot": "assistant", "consultant": "assistant", "model": "assistant"}
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
_CONTROL = re.compile("[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]")
_SPACES = re.compile("[\u00a0\u2007\u202f\t ]+")
_AROUND_NEWLINE = re.compile(" *\n *")
_MANY_NEWLINES = re.compile("\n{3,}")
MAX_TURNS, MAX_TURN_CHARS = 80, 20_000


def naive_normalize(turns: list[dict]) -> list[dict]:
    shift = 1 if turns and min(t["turn_number"] for t in turns) == 0 else 0
    out = []
    for t in turns:
        content = unicodedata.normalize("NFC", t["content"])
        content = _ZERO_WIDTH.sub("", content)
        content = _CONTROL.sub("", content)
        content = _SPACES.sub(" ", content)
        content = _AROUND_NEWLINE.sub("\n", content)
        content = _MANY_NEWLINES.sub("\n\n", content).strip()
        role = t["role"].strip().lower()
        out.append({"turn_number": t["turn_number"] + shift, "role": ROLE_ALIASES.get(role, role),
                    "content": content})
    out.sort(key=lambda t: t["turn_number"])
    return out


def naive_problem(doc: dict, turns: list[dict], scaffolding: dict) -> str | None:
    for column, known in (("persona_key", "personas"), ("arc_key", "arcs"), ("topic_key", "topics")):
        if doc[column] not in scaffolding[known]:
            return f"{column} {doc[column]!r} is not in the scaffolding"
    if not turns:
        return "the conversation has no turns"
    numbers = [t["turn_number"] for t in turns]
    if numbers != list(range(1, len(numbers) + 1)):
        return "turn numbers have gaps"
    if doc.get("turn_count") is not None and doc["turn_count"] != len(numbers):
        return f"the conversation says {doc['turn_count']} turns but has {len(numbers)}"
    if len(numbers) > MAX_TURNS:
        return "too many turns"
    for n, t in enumerate(turns, start=1):
        if t["role"] != ("user" if n % 2 else "assistant"):
            return f"turn {n} has role {t['role']!r}"
        if not t["content"].strip():
            return f"turn {n} is empty"
        if len(t["content"]) > MAX_TURN_CHARS:
            return f"turn {n} is too long"
    if not any(t["role"] == "assistant" for t in turns):
        return "no advisor turn"
    return None


def naive_enrich_one(doc: dict, scaffolding: dict, system_prompt: str, today: str) -> dict:
    """The enriched document of one conversation (the structure of enrichment.enriched_conversation,
    plus the conversation's quality)."""
    cid = doc["conversation_id"]
    turns = naive_normalize(doc["turns"])
    problem = naive_problem(doc, turns, scaffolding)
    if problem:
        return {"conversation_id": cid, "error": problem}
    persona = scaffolding["personas"][doc["persona_key"]]
    arc = scaffolding["arcs"][doc["arc_key"]]
    topic = scaffolding["topics"][doc["topic_key"]]
    metadata = {"client_persona": persona["name"], "persona_archetype": persona["archetype"],
                "client_background": persona["background"], "emotional_arc": arc["name"],
                "emotional_arc_key": arc["key"], "training_topic": topic["name"], "training_topic_key": topic["key"]}
    stages = arc["stages"]
    count = doc["turn_count"]
    k = count // 2
    history = [{"role": t["role"], "content": t["content"]} for t in turns]
    pairs, detected_valences, stage_valences, matches = [], [], [], []
    for index, turn in enumerate(turns):
        if turn["role"] != "assistant":
            continue
        n = turn["turn_number"]
        user_input = turns[index - 1]["content"]
        stage = stages[round((n // 2 - 1) * (len(stages) - 1) / max(1, k - 1))]
        found, valence, intensity = emotions.detect(user_input)
        scores = scoring.score_response(turn["content"], is_last=n == count)
        primary = found[0] if found else None
        detected_valences.append(valence if found else None)
        stage_valences.append(stage["valence"])
        matches.append(primary == stage["emotion"])
        pairs.append({
            "id": f"{cid}_turn{n}", "conversation_id": cid, "turn_number": n,
            "conversation_metadata": metadata, "system_prompt": system_prompt,
            "conversation_history": history[:n - 2], "current_user_input": user_input,
            "emotional_context": {"detected_emotions": found, "primary_emotion": primary, "valence": valence,
                                  "intensity": intensity, "expected_stage_emotion": stage["emotion"],
                                  "method": emotions.METHOD},
            "target_response": turn["content"],
            "training_metadata": {
                "enrichment_version": "2", "template_key": doc["template_key"],
                "template_version": doc["template_version"], "tier": doc["tier"], "provider": doc["provider"],
                "model": doc["model"], "is_scripted": doc["is_scripted"],
                "response_word_count": len(turn["content"].split()),
                "user_input_word_count": len(user_input.split()), "history_turns": n - 2,
                "quality_score": scores["quality_score"],
                "quality_scores": {d: scores[d] for d in scoring.DIMENSIONS},
            },
        })
    quality = [p["training_metadata"]["quality_score"] for p in pairs]
    return {
        "dataset_metadata": {"dataset_name": f"fp_conversation_{cid}", "version": "2", "created_date": today,
                             "vertical": scaffolding["consultant"]["vertical"], "total_conversations": 1,
                             "total_turns": len(turns)},
        "consultant_profile": scaffolding["consultant"],
        "conversation_quality": {
            "quality_score": round(sum(quality) / len(quality), 2), "min_pair_score": min(quality),
            "arc_adherence": scoring.arc_adherence(detected_valences, stage_valences),
            "emotion_match_rate": round(sum(matches) / len(matches), 3), "method": scoring.VERSION,
        },
        "training_pairs": pairs,
    }


def naive_ids(args: argparse.Namespace) -> tuple[list[str], int]:
    """The conversations the naive baseline enriches (all, or an evenly spaced sample), and how many there are."""
    names = sorted(p.name[:-5] for p in (Path(args.docs) / "conversations").iterdir())
    return evenly_spaced(names, args.naive_sample), len(names)


def stage_naive(args: argparse.Namespace) -> dict[str, Any]:
    docs = Path(args.docs)
    ids, total = naive_ids(args)
    source, out = docs / "conversations", docs / "enriched"
    out.mkdir(exist_ok=True)
    totals = {"pairs": 0, "failed": 0, "quality_sum": 0.0, "valence_sum": 0.0, "response_words": 0,
              "target_chars": 0, "with_emotion": 0, "conversation_quality_sum": 0.0, "arc_adherence_n": 0,
              "arc_adherence_sum": 0.0, "emotion_match_sum": 0.0}
    step = max(1, len(ids) // 10)
    with Timer() as t:
        with open(docs / "scaffolding.json") as f:
            scaffolding = json.load(f)
        consultant = scaffolding["consultant"]
        system_prompt = (f"You are {consultant['name']}, {consultant['title']}. {consultant['communication_style']} "
                         f"Your principles: {'; '.join(p.rstrip('.') for p in consultant['principles'])}.")
        today = datetime.now(UTC).date().isoformat()
        for done, cid in enumerate(ids, start=1):
            with open(source / f"{cid}.json", encoding="utf-8") as f:
                doc = json.load(f)
            enriched = naive_enrich_one(doc, scaffolding, system_prompt, today)
            with open(out / f"{cid}.json", "w", encoding="utf-8") as f:
                json.dump(enriched, f, ensure_ascii=False)
            if "error" in enriched:
                totals["failed"] += 1
                continue
            # totals for the check against BrightRun (a few microseconds per conversation)
            for p in enriched["training_pairs"]:
                totals["pairs"] += 1
                totals["quality_sum"] += p["training_metadata"]["quality_score"]
                totals["valence_sum"] += p["emotional_context"]["valence"]
                totals["response_words"] += p["training_metadata"]["response_word_count"]
                totals["target_chars"] += len(p["target_response"])
                totals["with_emotion"] += p["emotional_context"]["primary_emotion"] is not None
            q = enriched["conversation_quality"]
            totals["conversation_quality_sum"] += q["quality_score"]
            totals["emotion_match_sum"] += q["emotion_match_rate"]
            if q["arc_adherence"] is not None:
                totals["arc_adherence_n"] += 1
                totals["arc_adherence_sum"] += q["arc_adherence"]
            if done % step == 0:
                log(f"  naive: {done:,} / {len(ids):,} ({done / (time.perf_counter() - t.start):,.0f} conv/s)")
    return t.result(conversations=len(ids), sample=len(ids) < total,
                    output_bytes=disk_bytes(out), totals=totals)


def stage_enrich(args: argparse.Namespace) -> dict[str, Any]:
    from brightrun.enrichment.pipeline import enrich

    ws = open_ws(args)
    before = int(ws.scalar("SELECT count(*) FROM training_pairs"))
    n = int(ws.scalar("SELECT count(*) FROM conversations"))
    step = max(5000, (n // 10) // 5000 * 5000)
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            log(f"  enrich: {done:,} / {total:,} ({done / (time.perf_counter() - start):,.0f} conv/s)")

    with Timer() as t:
        start = time.perf_counter()
        result = enrich(ws, force=True, progress=progress)
    return t.result(conversations=n, enriched=result.enriched, failed=result.failed, pairs=result.pairs,
                    pairs_before=before, disk_bytes=disk_bytes(Path(args.workspace)))


def stage_verify(args: argparse.Namespace) -> dict[str, Any]:
    """Both sides made the same pairs: counts and totals over the naive's conversations, and a spot
    check of pairs (and their conversations' quality) field by field."""
    ws = open_ws(args)
    ids, _ = naive_ids(args)
    naive_totals = json.loads(Path(args.naive_result).read_text())["totals"]
    ours = ws.sql("""
        SELECT count(*) AS pairs, sum(quality_score)::DOUBLE AS quality_sum, sum(valence)::DOUBLE AS valence_sum,
               sum(response_word_count)::BIGINT AS response_words,
               sum(length(target_response))::BIGINT AS target_chars, count(primary_emotion) AS with_emotion
        FROM training_pairs WHERE conversation_id IN (SELECT unnest(?))""", [ids]).row(0, named=True)
    cq = ws.sql("""
        SELECT sum(quality_score)::DOUBLE AS conversation_quality_sum, count(arc_adherence) AS arc_adherence_n,
               sum(arc_adherence)::DOUBLE AS arc_adherence_sum, sum(emotion_match_rate)::DOUBLE AS emotion_match_sum
        FROM conversation_quality WHERE conversation_id IN (SELECT unnest(?))""", [ids]).row(0, named=True)
    ours |= cq
    totals = {}
    for key, theirs in naive_totals.items():
        if key == "failed":
            continue
        mine = ours[key] or 0
        same = abs(mine - theirs) <= 1e-6 * max(1.0, abs(theirs)) if isinstance(theirs, float) else mine == theirs
        totals[key] = {"brightrun": mine, "naive": theirs, "same": bool(same)}

    # spot check: pairs of evenly spaced conversations, every field
    checked, mismatches = 0, []
    for cid in evenly_spaced(ids, args.spot_checks):
        doc = json.loads((Path(args.docs) / "enriched" / f"{cid}.json").read_text())
        rows = {r["pair_id"]: r for r in ws.sql("SELECT * FROM training_pairs WHERE conversation_id = ?",
                                                 [cid]).iter_rows(named=True)}
        quality = ws.sql("SELECT * FROM conversation_quality WHERE conversation_id = ?", [cid]).row(0, named=True)
        if len(rows) != len(doc["training_pairs"]):
            mismatches.append(f"{cid}: {len(rows)} pairs vs {len(doc['training_pairs'])}")
        for pair in doc["training_pairs"]:
            row = rows.get(pair["id"])
            if row is None:
                mismatches.append(f"{pair['id']}: missing in training_pairs")
                continue
            checked += 1
            ctx, meta = pair["emotional_context"], pair["training_metadata"]
            fields = {
                "system_prompt": (row["system_prompt"], pair["system_prompt"]),
                "conversation_history": (row["conversation_history"], pair["conversation_history"]),
                "current_user_input": (row["current_user_input"], pair["current_user_input"]),
                "target_response": (row["target_response"], pair["target_response"]),
                "detected_emotions": (row["detected_emotions"], ctx["detected_emotions"]),
                **{k: (row[k], ctx[k]) for k in ("primary_emotion", "valence", "intensity",
                                                  "expected_stage_emotion")},
                **{k: (row[k], meta[k]) for k in ("response_word_count", "user_input_word_count", "history_turns",
                                                  "quality_score", "template_key", "tier")},
                **{k: (row[k], meta["quality_scores"][k]) for k in scoring.DIMENSIONS},
            }
            mismatches += [f"{pair['id']}.{k}: {a!r} vs {b!r}"[:300] for k, (a, b) in fields.items() if a != b]
        for k in ("quality_score", "min_pair_score", "arc_adherence", "emotion_match_rate"):
            if quality[k] != doc["conversation_quality"][k]:
                mismatches.append(f"{cid} conversation {k}: {quality[k]!r} vs {doc['conversation_quality'][k]!r}")
    same = all(v["same"] for v in totals.values()) and not mismatches
    return {"totals": totals, "spot_conversations": min(args.spot_checks, len(ids)), "spot_pairs": checked,
            "mismatches": mismatches[:20], "mismatch_count": len(mismatches), "same": same}


# -- duplicates ----------------------------------------------------------------------------------


def duplicates_module(args: argparse.Namespace):
    if args.implementation == "current":
        from brightrun.quality import duplicates

        return duplicates
    import types

    source = subprocess.run(["git", "show", f"{BEFORE_COMMIT}:brightrun/quality/duplicates.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    module = types.ModuleType("duplicates_before")
    sys.modules[module.__name__] = module
    exec(compile(source, f"duplicates.py@{BEFORE_COMMIT[:7]}", "exec"), module.__dict__)  # noqa: S102
    return module


def stage_near(args: argparse.Namespace) -> dict[str, Any]:
    dup = duplicates_module(args)
    ws = open_ws(args)
    with Timer() as t:
        start = time.perf_counter()
        texts = dup.conversation_texts(ws)
        load_seconds = time.perf_counter() - start
        rss_texts = rss_now_kib()
        start = time.perf_counter()
        clusters = dup.near_duplicate_clusters(texts, threshold=args.threshold)
        near_seconds = time.perf_counter() - start
    sizes = sorted((len(c.ids) for c in clusters), reverse=True)
    digest = hashlib.sha256(json.dumps([[c.ids, c.similarity] for c in clusters]).encode()).hexdigest()
    return t.result(digest=digest, conversations=len(texts), load_seconds=load_seconds, near_seconds=near_seconds,
                    rss_after_texts_kib=rss_texts, text_chars=sum(map(len, texts.values())),
                    clusters=len(clusters), in_clusters=sum(sizes), largest=sizes[:5],
                    implementation=args.implementation)


def stage_exact(args: argparse.Namespace) -> dict[str, Any]:
    from brightrun.quality.duplicates import conversation_texts, exact_duplicates

    ws = open_ws(args)
    texts = conversation_texts(ws)
    with Timer() as t:
        groups = exact_duplicates(texts)
    return t.result(conversations=len(texts), groups=len(groups), in_groups=sum(len(g) for g in groups))


def _pairs_of_groups(groups: list[list[str]]) -> set[tuple[str, str]]:
    return {(a, b) for g in groups for i, a in enumerate(sorted(g)) for b in sorted(g)[i + 1:]}


def stage_allpairs(args: argparse.Namespace) -> dict[str, Any]:
    from brightrun.quality.duplicates import conversation_texts, near_duplicate_clusters, shingles

    ws = open_ws(args)
    texts = conversation_texts(ws)
    total = len(texts)
    sample_ids = evenly_spaced(sorted(texts), args.dup_sample)
    sample = {k: texts[k] for k in sample_ids}
    del texts
    threshold = args.threshold
    with Timer() as t:  # the naive baseline: shingle sets, then every pair's exact Jaccard
        sets = [shingles(sample[k]) or {b""} for k in sample_ids]
        exact: list[tuple[str, str, float]] = []
        below = 0  # pairs just under the threshold (within 0.1): where an estimate can land over it
        for i in range(len(sets)):
            a = sets[i]
            for j in range(i + 1, len(sets)):
                b = sets[j]
                inter = len(a & b)
                jaccard = inter / (len(a) + len(b) - inter)
                if jaccard >= threshold:
                    exact.append((sample_ids[i], sample_ids[j], jaccard))
                elif jaccard >= threshold - 0.1:
                    below += 1
    start = time.perf_counter()
    clusters = near_duplicate_clusters(sample, threshold=threshold)
    lsh_seconds = time.perf_counter() - start

    # exact answer as clusters too (connected components of the pairs at or over the threshold)
    parent = {k: k for k in sample_ids}

    def find(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for a, b, _ in exact:
        parent[find(a)] = find(b)
    components: dict[str, list[str]] = {}
    for k in sample_ids:
        components.setdefault(find(k), []).append(k)
    exact_cluster_pairs = _pairs_of_groups([g for g in components.values() if len(g) > 1])
    lsh_pairs = _pairs_of_groups([list(c.ids) for c in clusters])
    direct = {(min(a, b), max(a, b)) for a, b, _ in exact}
    hits = len(lsh_pairs & exact_cluster_pairs)
    n = len(sample_ids)
    return t.result(
        conversations=total, sample=n, pairs=n * (n - 1) // 2, exact_pairs=len(exact),
        exact_clusters=sum(1 for g in components.values() if len(g) > 1),
        exact_cluster_pairs=len(exact_cluster_pairs),
        extrapolated_seconds=t.seconds * (total / n) ** 2, lsh_seconds=lsh_seconds,
        lsh_clusters=len(clusters), lsh_pairs=len(lsh_pairs),
        precision=hits / len(lsh_pairs) if lsh_pairs else None,
        recall=hits / len(exact_cluster_pairs) if exact_cluster_pairs else None,
        direct_recall=len(direct & lsh_pairs) / len(direct) if direct else None,
        just_over=sum(1 for *_, j in exact if j < threshold + 0.1), just_under=below)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def stage_pool_enrich(args: argparse.Namespace) -> dict[str, Any]:
    from brightrun.enrichment.pipeline import enrich

    ws = open_ws(args)
    load = _load()
    with Timer() as t:
        result = enrich(ws, force=True, workers=args.pool_workers)
    rows = ws.sql("SELECT pair_id, quality_score, valence, detected_emotions::VARCHAR, target_response FROM training_pairs "
                  "ORDER BY pair_id")
    digest = hashlib.sha256(rows.write_csv().encode()).hexdigest()
    return t.result(workers=args.pool_workers, conversations=result.enriched + result.failed, pairs=result.pairs,
                    digest=digest, load_before=load, load_after=_load())


def stage_pool_report(args: argparse.Namespace) -> dict[str, Any]:
    from brightrun.quality.report import build_quality_report

    ws = open_ws(args)
    load = _load()
    with Timer() as t:
        report = build_quality_report(ws, workers=args.pool_workers)
    body = report.model_dump_json(exclude={"computed_at", "seconds"})
    return t.result(workers=args.pool_workers, conversations=report.conversations, pairs=report.training_pairs,
                    digest=hashlib.sha256(body.encode()).hexdigest(), load_before=load, load_after=_load())


STAGES = {"build": stage_build, "pool_enrich": stage_pool_enrich, "pool_report": stage_pool_report, "export": stage_export, "naive": stage_naive, "enrich": stage_enrich,
          "verify": stage_verify, "near": stage_near, "exact": stage_exact, "allpairs": stage_allpairs}


# == parent ===========================================================================================


def run_stage(name: str, args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    """Run one stage in a fresh child process (same core); its result is the JSON on its stdout."""
    command = [sys.executable, str(Path(__file__).resolve()), "--stage", name, "--workspace", str(args.workspace),
               "--docs", str(args.docs), "--conversations", str(args.conversations),
               "--naive-sample", str(args.naive_sample), "--dup-sample", str(args.dup_sample),
               "--threshold", str(args.threshold), "--spot-checks", str(args.spot_checks), *extra]
    log(f"[{name}] {' '.join(extra)}".rstrip())
    env = dict(os.environ, BRIGHTRUN_BENCH_CPUS="0,1") if name.startswith("pool_") else None
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"stage {name} failed with exit code {proc.returncode}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - start
    return result


def fmt_mib(kib: float | None) -> str:
    return "" if kib is None else f"{mib(kib):,.0f}"


def report(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    r = summary["results"]
    t = Table(title=f"BrightRun enrichment and duplicates benchmark: {summary['conversations']:,} conversations, "
                    f"pinned to CPU {summary['cpu']}, {summary['date']}")
    for col in ("stage", "items", "seconds", "rate /s", "baseline", "ratio", "RSS at start MiB", "peak RSS MiB"):
        t.add_column(col, justify="left" if col in ("stage", "baseline") else "right")

    def row(label: str, res: dict | None, items: int | None = None, rate: bool = True, baseline: str = "",
            ratio: str = "", seconds: float | None = None, memory: bool = True) -> None:
        if res is None:
            return
        secs = res["seconds"] if seconds is None else seconds
        t.add_row(label, f"{items:,}" if items is not None else "", f"{secs:,.2f}",
                  f"{items / secs:,.0f}" if rate and items and secs else "", baseline, ratio,
                  fmt_mib(res.get("rss_start_kib")) if memory else "",
                  fmt_mib(res.get("peak_rss_kib")) if memory else "")

    build = r.get("build")
    if build and build.get("built"):
        row("build (create_job + run_job; not in a ratio)", build, build["conversations"])
    row("export to one JSON document per conversation (not timed for the ratio)", r.get("export"),
        r.get("export", {}).get("documents"))
    naive, ours = r.get("naive"), r.get("enrich")
    if naive and ours:
        naive_rate = naive["conversations"] / naive["seconds"]
        ours_rate = ours["enriched"] / ours["seconds"]
        label = "naive: json.load, plain-Python pairs, json.dump per conversation"
        if naive["sample"]:
            label += f" (evenly spaced sample of {naive['conversations']:,})"
        row(label, naive, naive["conversations"])
        row(f"BrightRun enrich(ws, force=True): {ours['pairs']:,} pairs", ours, ours["enriched"],
            baseline=f"{naive_rate:,.0f} conv/s (naive)", ratio=f"{ours_rate / naive_rate:.2f}x")
    near, exact, allp = r.get("near"), r.get("exact"), r.get("allpairs")
    if near:
        row("conversation_texts(ws) (load for duplicates)", near, near["conversations"], seconds=near["load_seconds"],
            memory=False)
        base = ""
        ratio = ""
        if allp:
            base = f"{allp['extrapolated_seconds']:,.0f} s all-pairs (n^2 from {allp['sample']:,})"
            ratio = f"{allp['extrapolated_seconds'] / near['near_seconds']:,.0f}x faster"
        row(f"near_duplicate_clusters ({near['clusters']:,} clusters, {near['in_clusters']:,} conversations; "
            "memory: texts + clusters)", near, near["conversations"], seconds=near["near_seconds"], baseline=base,
            ratio=ratio)
    before = r.get("near_before")
    if before:
        row(f"near_duplicate_clusters before ({BEFORE_COMMIT[:7]}, datasketch; {before['clusters']:,} clusters)",
            before, before["conversations"], seconds=before["near_seconds"],
            ratio=f"now {before['near_seconds'] / near['near_seconds']:.1f}x faster" if near else "")
    if exact:
        row(f"exact_duplicates ({exact['groups']:,} groups)", exact, exact["conversations"])
    if allp:
        row(f"baseline: all-pairs exact Jaccard, {allp['sample']:,} sample ({allp['pairs']:,} pairs)", allp,
            allp["pairs"])
        row(f"near_duplicate_clusters on the same {allp['sample']:,}", allp, allp["sample"],
            seconds=allp["lsh_seconds"], memory=False)
    console.print(t)

    v = r.get("verify")
    if v:
        c = Table(title=f"Same result: totals over the naive's {naive['conversations']:,} conversations, and "
                        f"{v['spot_pairs']} pairs of {v['spot_conversations']} conversations field by field")
        for col in ("figure", "BrightRun", "naive", "same"):
            c.add_column(col, justify="left" if col == "figure" else "right")
        for key, val in v["totals"].items():
            c.add_row(key, f"{val['brightrun']:,.6g}", f"{val['naive']:,.6g}", "yes" if val["same"] else "[red]NO[/]")
        c.add_row("spot-checked fields that differ", str(v["mismatch_count"]), "", "yes" if not v["mismatch_count"]
                  else "[red]NO[/]")
        console.print(c)
        for m in v["mismatches"]:
            console.print(f"  [red]{m}[/]")
    if allp:
        def pr(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.3f}"

        console.print(
            f"LSH against exact all-pairs Jaccard on {allp['sample']:,} evenly spaced conversations "
            f"(threshold {summary['threshold']}): exact answer {allp['exact_pairs']:,} pairs at or over the "
            f"threshold in {allp['exact_clusters']:,} clusters ({allp['exact_cluster_pairs']:,} same-cluster pairs); "
            f"LSH {allp['lsh_clusters']:,} clusters ({allp['lsh_pairs']:,} same-cluster pairs): precision "
            f"{pr(allp['precision'])}, recall {pr(allp['recall'])} (of the direct exact pairs: "
            f"{pr(allp['direct_recall'])}). Pairs within 0.1 of the threshold: {allp['just_over']:,} at or over it, "
            f"{allp['just_under']:,} under it")
    b = summary["budgets"]
    console.print(f"Peak RSS of the largest stage {b['largest_stage']} {mib(b['peak_rss_kib']):,.0f} MiB vs 4096 MiB "
                  f"budget: " + ("[green]met[/]" if b["memory_met"] else "[red]NOT met[/]"))
    if "near_same_as_before" in b:
        console.print(f"near_duplicate_clusters gives the same clusters as before ({BEFORE_COMMIT[:7]}): "
                      + ("[green]yes[/]" if b["near_same_as_before"] else "[red]NO[/]"))
    if "same_pairs" in b:
        console.print("BrightRun and the naive baseline made the same pairs: "
                      + ("[green]yes[/]" if b["same_pairs"] else "[red]NO[/]"))


def workers_compare(args: argparse.Namespace, results: dict[str, Any]) -> int:
    """Enrichment and the quality report with 1 then 2 workers on cores 0 and 1; exit 1 if the rows differ."""
    for stage in ("pool_enrich", "pool_report"):
        for workers in (1, 2):
            results[f"{stage}_{workers}"] = r = run_stage(stage, args, "--pool-workers", str(workers))
            log(f"  {stage} workers={workers}: {r['conversations']:,} conversations, {r['pairs']:,} pairs in "
                f"{r['seconds']:,.1f} s = {r['conversations'] / r['seconds']:,.0f} conv/s; parent peak RSS "
                f"{fmt_mib(r['peak_rss_kib'])} MiB; load {r['load_before']} -> {r['load_after']}; digest "
                f"{r['digest'][:12]}")
        one, two = results[f"{stage}_1"], results[f"{stage}_2"]
        log(f"  {stage}: 2 workers {one['seconds'] / two['seconds']:.2f}x the speed of 1; same result: "
            f"{one['digest'] == two['digest']}")
    same = all(results[f"{s}_1"]["digest"] == results[f"{s}_2"]["digest"] for s in ("pool_enrich", "pool_report"))
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    return 0 if same else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=100_000, help="conversations to generate")
    parser.add_argument("--workspace", type=Path, default=None,
                        help="workspace folder: reused if it holds conversations, else built there "
                             "(default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the workspace and the JSON documents at the end")
    parser.add_argument("--json", action="store_true", help="also print a JSON summary")
    parser.add_argument("--naive-sample", type=int, default=0,
                        help="run the naive baseline on this many evenly spaced conversations (0: all)")
    parser.add_argument("--dup-sample", type=int, default=2000, help="conversations in the all-pairs baseline")
    parser.add_argument("--threshold", type=float, default=0.6, help="near-duplicate Jaccard threshold")
    parser.add_argument("--spot-checks", type=int, default=25, help="conversations whose pairs are compared field by field")
    parser.add_argument("--skip-enrichment", action="store_true", help="only the duplicate stages")
    parser.add_argument("--skip-duplicates", action="store_true", help="only the enrichment stages")
    parser.add_argument("--before-duplicates", action="store_true",
                        help=f"also time near_duplicate_clusters as of {BEFORE_COMMIT[:7]} (datasketch) on all "
                             "conversations (slow; needs about 5x the memory)")
    parser.add_argument("--workers-compare", action="store_true",
                        help="only build, then enrichment and the quality report with 1 and 2 worker processes")
    parser.add_argument("--pool-workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--docs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--naive-result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--implementation", default="current", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.stage:  # a child: run one stage, print its result as one JSON line
        print(json.dumps(STAGES[args.stage](args), default=str))
        return 0

    started = time.perf_counter()
    temp_ws = args.workspace is None
    args.workspace = Path(tempfile.mkdtemp(prefix="brightrun-bench-")) if temp_ws else args.workspace.resolve()
    args.docs = Path(tempfile.mkdtemp(prefix="brightrun-bench-docs-"))
    log(f"BrightRun enrichment and duplicates benchmark: {args.conversations:,} conversations in {args.workspace}; "
        f"documents in {args.docs}; pinned to CPU {sorted(os.sched_getaffinity(0))}; python {platform.python_version()}")
    summary: dict[str, Any] = {"conversations": args.conversations, "cpu": CPU, "date": date.today().isoformat(),
                               "workspace": str(args.workspace), "python": platform.python_version(),
                               "threshold": args.threshold, "naive_sample": args.naive_sample,
                               "dup_sample": args.dup_sample, "results": {}}
    results = summary["results"]
    try:
        results["build"] = build = run_stage("build", args)
        summary["conversations"] = build["conversations"]
        if build.get("built"):
            log(f"  built {build['conversations']:,} conversations in {build['seconds']:,.1f} s "
                f"({build['conversations'] / build['seconds']:,.0f} conv/s), peak RSS {fmt_mib(build['peak_rss_kib'])} MiB")
        if args.workers_compare:
            return workers_compare(args, results)
        if not args.skip_enrichment:
            results["export"] = export = run_stage("export", args)
            log(f"  exported {export['documents']:,} documents ({export['bytes'] / 2**20:,.0f} MiB) in "
                f"{export['seconds']:,.1f} s")
            results["naive"] = naive = run_stage("naive", args)
            log(f"  naive: {naive['conversations']:,} conversations, {naive['totals']['pairs']:,} pairs in "
                f"{naive['seconds']:,.1f} s = {naive['conversations'] / naive['seconds']:,.0f} conv/s; peak RSS "
                f"{fmt_mib(naive['peak_rss_kib'])} MiB")
            results["enrich"] = ours = run_stage("enrich", args)
            log(f"  BrightRun: {ours['enriched']:,} conversations, {ours['pairs']:,} pairs in {ours['seconds']:,.1f} s "
                f"= {ours['enriched'] / ours['seconds']:,.0f} conv/s; peak RSS {fmt_mib(ours['peak_rss_kib'])} MiB")
            naive_file = args.docs / "naive_result.json"
            naive_file.write_text(json.dumps(naive))
            results["verify"] = verify = run_stage("verify", args, "--naive-result", str(naive_file))
            log(f"  same pairs: {verify['same']} ({verify['mismatch_count']} spot-check mismatches)")
            ratio = (ours["enriched"] / ours["seconds"]) / (naive["conversations"] / naive["seconds"])
            log(f"  ratio BrightRun / naive: {ratio:.2f}x")
        if not args.skip_duplicates:
            results["near"] = near = run_stage("near", args)
            log(f"  near duplicates: {near['clusters']:,} clusters in {near['near_seconds']:,.1f} s "
                f"(+{near['load_seconds']:,.1f} s to load the texts); peak RSS {fmt_mib(near['peak_rss_kib'])} MiB")
            results["exact"] = exact = run_stage("exact", args)
            log(f"  exact duplicates: {exact['groups']:,} groups in {exact['seconds']:,.1f} s")
            results["allpairs"] = allp = run_stage("allpairs", args)
            log(f"  all-pairs on {allp['sample']:,}: {allp['seconds']:,.1f} s, extrapolated to all "
                f"{allp['extrapolated_seconds'] / 3600:,.1f} h; LSH precision {allp['precision']}, recall {allp['recall']}")
            if args.before_duplicates:
                results["near_before"] = before = run_stage("near", args, "--implementation", "before")
                log(f"  near duplicates before: {before['clusters']:,} clusters in {before['near_seconds']:,.1f} s; "
                    f"peak RSS {fmt_mib(before['peak_rss_kib'])} MiB")
        measured = {k: v for k, v in results.items() if isinstance(v, dict) and "peak_rss_kib" in v and k != "near_before"}
        largest = max(measured, key=lambda k: measured[k]["peak_rss_kib"])
        summary["budgets"] = budgets = {"largest_stage": largest, "peak_rss_kib": measured[largest]["peak_rss_kib"],
                                        "memory_met": measured[largest]["peak_rss_kib"] < MEMORY_BUDGET_KIB}
        if "verify" in results:
            budgets["same_pairs"] = results["verify"]["same"] and (
                results["naive"]["totals"]["pairs"] == results["verify"]["totals"]["pairs"]["brightrun"])
            budgets["ratio"] = ratio
        if "near" in results and "near_before" in results:
            budgets["near_same_as_before"] = (results["near_before"]["digest"] == results["near"]["digest"])
        summary["wall_seconds"] = time.perf_counter() - started
        report(summary)
        log(f"wall time {summary['wall_seconds']:,.0f} s")
        if args.json:
            print(json.dumps(summary, indent=2, default=str))
        return 0 if budgets["memory_met"] and budgets.get("same_pairs", True) else 1
    finally:
        if args.keep:
            log(f"kept: workspace {args.workspace}, documents {args.docs}")
        else:
            shutil.rmtree(args.docs, ignore_errors=True)
            if temp_ws:
                shutil.rmtree(args.workspace, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
