"""Checks shared by the validators (formats.md §7): content, token limits, example counts, duplicates
within a split, train/test leakage and split file names. Format modules check their own record shape and
hand each record over as an `Example` (its turns with roles mapped to system/user/assistant)."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from brightrun.exports.base import Report, Where
from brightrun.exports.files import hf_split_of, manifest_entry
from brightrun.exports.tokens import ESTIMATE, ExampleCount, TokenCounter, count_example, summarize
from brightrun.quality.duplicates import near_duplicate_clusters

NEAR_LIMIT = 0.9  # an estimated example above 90% of a limit is flagged: the estimate can be off
LEAK_THRESHOLD = 0.8  # Jaccard similarity of word 3-shingles above which a held-out record leaks


def text_problem(value: object) -> str | None:
    """Why a content value is unusable (check 6): not a string, empty, or whitespace only."""
    if not isinstance(value, str):
        return f"is {type(value).__name__ if value is not None else 'null'}, not text"
    if not value or value.isspace():  # (not value.strip(): the same, without copying the text)
        return "is empty" if not value else "is whitespace only"
    return None


def check_text(report: Report, where: Where, value: object, what: str, rule: str = "missing_content") -> bool:
    problem = text_problem(value)
    if problem:
        report.error(where, rule, f"{what} {problem}", f"give {what} non-empty text, or drop the record")
    return problem is None


def check_keys(report: Report, where: Where, obj: dict, allowed: tuple[str, ...], what: str, *,
               rule: str = "unrecognized_key", error: bool = True) -> None:
    extra = sorted(set(obj) - set(allowed))
    if extra:
        add = report.error if error else report.warn
        add(where, rule, f"{what} has key(s) {', '.join(extra)}; allowed: {', '.join(allowed)}",
            f"remove {', '.join(extra)}")


def check_alternation(report: Report, where: Where, roles: list[str], *, error: bool, rule: str = "role_order",
                      first: str = "user") -> None:
    """User first after an optional leading system turn, then strictly user/assistant alternating."""
    body = roles[1:] if roles and roles[0] == "system" else roles
    add = report.error if error else report.warn
    if body and body[0] != first:
        add(where, rule, f"the first turn is {body[0]!r}, not {first!r}", f"start the conversation with a {first} turn")
        return
    for i in range(1, len(body)):
        if body[i] == body[i - 1]:
            add(where, rule, f"turns {i} and {i + 1} are both {body[i]!r}; roles must alternate",
                "merge consecutive turns of the same role or insert the missing turn")
            return


@dataclass
class Example:
    where: Where
    split: str
    sequences: list[list[dict]]
    """What the trainer sees: one conversation (SFT), prompt+chosen and prompt+rejected (preference)."""
    prompt: list[dict] = field(default_factory=list)


def _norm_one(m: dict) -> str:
    """A message as the duplicate and leakage checks compare it (a sequence: its messages' lines joined by
    newlines): role and content, case and whitespace ignored."""
    return f"{m.get('role')}: {' '.join(str(m.get('content') or '').lower().split())}"


MessageKeys = dict[str, dict[str, bytes]]
"""{role: {content: the message's key}}, over one validation."""


def _message_key(m: dict, known: MessageKeys) -> bytes:
    """The 16-byte blake2b digest of a message's _norm_one line, made once per distinct (role, content) in a
    validation: a system prompt or an answer repeated over many records is normalized once. The contents are
    looked up as themselves (the validated records keep them alive anyway; a string's hash is computed once)."""
    role, text = m.get("role"), m.get("content")
    if type(role) is not str:
        role = str(role)
    if type(text) is not str:
        text = str(text or "")
    table = known.get(role)
    if table is None:
        table = known[role] = {}
    digest = table.get(text)
    if digest is None:
        digest = table[text] = hashlib.blake2b(f"{role}: {_folded(text)}".encode(), digest_size=16).digest()
    return digest


def _folded(text: str) -> str:
    """`' '.join(text.lower().split())`, _norm_one's content: a printable text (no whitespace but the plain
    space: every other whitespace character is unprintable) with no two spaces together and none at either end
    is already split and joined, and lowering makes no whitespace, so it is only lowered (in 60% of the
    time)."""
    if text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text.lower()
    return " ".join(text.lower().split())


def _digests(seq: list[dict], head: int | None, known: MessageKeys) -> tuple[str, str | None]:
    """(the key of a sequence, the key of its first `head` messages when head is given): the blake2b digest
    of its messages' keys (_message_key) in order, so two sequences share a key when their messages are the
    same ignoring case and whitespace."""
    keys = [_message_key(m, known) for m in seq]
    full = hashlib.blake2b(b"".join(keys), digest_size=16).hexdigest()
    if head is None:
        return full, None
    return full, hashlib.blake2b(b"".join(keys[:head]), digest_size=16).hexdigest()


def _begins(seq: list[dict], prompt: list[dict]) -> bool:
    """Whether a non-empty prompt is the start of the sequence (the same message objects)."""
    return bool(prompt) and len(prompt) <= len(seq) and all(a is b for a, b in zip(prompt, seq, strict=False))


@dataclass
class Limits:
    tokens: int | None = None
    tokens_label: str = ""
    over_action: str = "truncated"
    over_error: bool = False
    min_train: int | None = None
    suggest_train: int | None = None
    suggest_label: str = ""
    max_held_out: int | None = None
    max_examples: int | None = None
    max_file_bytes: int | None = None
    file_label: str = ""


def finish(report: Report, examples: list[Example], files: list[Path], limits: Limits,
           counter: TokenCounter | None = None, *, near_duplicates: bool = True) -> None:
    """Run the shared checks on all examples of an export and put per-split statistics in report.stats."""
    counter = counter or ESTIMATE
    by_split: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_split[ex.split].append(ex)
    keys: dict[int, tuple[list[dict], str]] = {}  # each sequence (and prompt) normalized and digested once
    messages: MessageKeys = {}
    for ex in examples:  # kept with its key, so that its id is not reused by another while the key is known
        for seq in ex.sequences:
            if id(seq) not in keys:
                head = len(ex.prompt) if _begins(seq, ex.prompt) and id(ex.prompt) not in keys else None
                full, keys_head = _digests(seq, head, messages)
                keys[id(seq)] = (seq, full)
                if keys_head is not None:
                    keys[id(ex.prompt)] = (ex.prompt, keys_head)

    def key_of(seq: list[dict]) -> str:
        known = keys.get(id(seq))
        if known is None:
            known = keys[id(seq)] = (seq, _digests(seq, None, messages)[0])
        return known[1]
    counter.settle()  # (counts made elsewhere are waited for only now, after the digests)
    counts = {id(ex): count_example(ex.sequences, counter) for ex in examples}
    _file_checks(report, files, limits)
    _count_checks(report, files, by_split, limits)
    if limits.tokens:
        _token_checks(report, examples, counts, limits, counter)
    _duplicates(report, by_split, key_of)
    _leakage(report, by_split, near_duplicates, key_of)
    report.stats = {"token_method": counter.name, "exact_tokens": counter.exact, "splits": {
        split: summarize(split, [counts[id(ex)] for ex in exs], counter, limits.tokens).as_dict()
        for split, exs in by_split.items()}}


def _file_checks(report: Report, files: list[Path], limits: Limits) -> None:
    for path in files:
        where = Where(str(path), None)
        if manifest_entry(path)[0] is None and hf_split_of(path.name) is None:
            report.warn(where, "split_file_name", f"datasets cannot tell the split from the name {path.name!r}",
                        "name split files train / validation / test (check 16), or list them in README.md configs")
        if limits.max_file_bytes and path.exists() and path.stat().st_size > limits.max_file_bytes:
            report.error(where, "file_too_large", f"the file has {path.stat().st_size:,} bytes, over the "
                         f"{limits.max_file_bytes:,} of {limits.file_label}", "split the data over several files")


def _count_checks(report: Report, files: list[Path], by_split: dict[str, list[Example]], limits: Limits) -> None:
    train_file = next((str(p) for p in files if (manifest_entry(p)[0] or hf_split_of(p.name) or "train") == "train"),
                      str(files[0]) if files else "")
    n_train = len(by_split.get("train", []))
    if limits.min_train and n_train < limits.min_train:
        report.error(Where(train_file, None), "min_examples", f"the training split has {n_train} valid examples; "
                     f"the consumer needs at least {limits.min_train}", f"add examples up to {limits.min_train} or more")
    elif limits.suggest_train and n_train < limits.suggest_train:
        report.warn(Where(train_file, None), "few_examples", f"the training split has {n_train} examples; "
                    f"{limits.suggest_label}", f"collect about {limits.suggest_train} examples or more")
    for split, exs in by_split.items():
        if split != "train" and limits.max_held_out and len(exs) > limits.max_held_out:
            report.error(Where(exs[0].where.file, None), "too_many_validation_examples",
                         f"the {split} split has {len(exs)} examples, over the {limits.max_held_out} allowed",
                         f"keep at most {limits.max_held_out} held-out examples")
    if limits.max_examples and n_train > limits.max_examples:
        report.error(Where(train_file, None), "too_many_examples", f"{n_train} training examples, over the "
                     f"{limits.max_examples:,} allowed", "sample the training split down")


def _token_checks(report: Report, examples: list[Example], counts: dict[int, ExampleCount], limits: Limits,
                  counter: TokenCounter) -> None:
    limit = limits.tokens
    assert limit
    method = "counted" if counter.exact else "estimated"
    for ex in examples:
        tokens = counts[id(ex)].tokens
        if tokens > limit:
            add = report.error if limits.over_error else report.warn
            add(ex.where, "token_limit", f"{tokens:,} tokens ({method}), over the {limit:,} of "
                f"{limits.tokens_label}; the example will be {limits.over_action}",
                "shorten the conversation or split it into several examples")
        elif not counter.exact and tokens > NEAR_LIMIT * limit:
            report.warn(ex.where, "near_token_limit", f"about {tokens:,} tokens (estimated), within 10% of the "
                        f"{limit:,} of {limits.tokens_label}", "count exactly with the model's tokenizer, or shorten it")


def _duplicates(report: Report, by_split: dict[str, list[Example]], key_of: Callable[[list[dict]], str]) -> None:
    for exs in by_split.values():
        first: dict[str, Example] = {}
        for ex in exs:
            key = "\x1e".join(key_of(s) for s in ex.sequences)
            if key in first:
                report.warn(ex.where, "duplicate", f"same conversation (ignoring case and whitespace) as line "
                            f"{first[key].where.line} of {Path(first[key].where.file).name}",
                            "drop the duplicate (Axolotl's dataset_exact_deduplication would)")
            else:
                first[key] = ex


def _units(ex: Example) -> list[tuple[str, list[dict]]]:
    """Every text of a row that a trainer learns from, named: the whole sequence of an SFT or KTO row; each
    side of a preference row, and each side's answer alone (a rejected answer copied from a held-out
    conversation leaks even when the prompts differ)."""
    if len(ex.sequences) == 1:
        return [("the record", ex.sequences[0])]
    names = ("chosen", "rejected") if len(ex.sequences) == 2 else tuple(f"side {k + 1}" for k in range(len(ex.sequences)))
    units = [(f"its {name} side", seq) for name, seq in zip(names, ex.sequences, strict=True)]
    return units + [(f"its {name} answer", seq[-1:]) for name, seq in zip(names, ex.sequences, strict=True)]


def _leakage(report: Report, by_split: dict[str, list[Example]], near: bool,
             key_of: Callable[[list[dict]], str]) -> None:
    """Check 14 on every text of every row: a held-out row leaks when any of its texts (_units) is in
    train, exactly or as a near duplicate of any text of any training row, or when its prompt is."""
    train = by_split.get("train", [])
    held = [ex for split, exs in by_split.items() if split != "train" for ex in exs]
    if not train or not held:
        return
    full: dict[str, Example] = {}
    for ex in train:
        for _, seq in _units(ex):
            full.setdefault(key_of(seq), ex)
    prompts = {key_of(ex.prompt): ex for ex in train if ex.prompt}
    flagged: set[int] = set()
    for i, ex in enumerate(held):
        for what, seq in _units(ex):
            found = full.get(key_of(seq))
            if found is not None:
                flagged.add(i)
                report.warn(ex.where, "leakage_exact", f"{what} is in train (line {found.where.line})",
                            "remove it from one split; split by conversation or source id")
                break
        else:
            if ex.prompt and key_of(ex.prompt) in prompts:
                flagged.add(i)
                report.warn(ex.where, "leakage_prompt", "the same prompt is in train (line "
                            f"{prompts[key_of(ex.prompt)].where.line}) with a different answer",
                            "keep all answers to one prompt in one split")
    if not near:
        return
    texts, owner = {}, {}
    for tag, rows in (("t", train), ("h", held)):
        for i, ex in enumerate(rows):
            for k, (what, seq) in enumerate(_units(ex)):
                key = f"{tag}{i}.{k}"
                texts[key] = "\n".join(m.get("content") or "" for m in seq)
                owner[key] = (tag, i, what)
    for cluster in near_duplicate_clusters(texts, threshold=LEAK_THRESHOLD):
        trains = [owner[k][1] for k in cluster.ids if owner[k][0] == "t"]
        for key in cluster.ids:
            tag, i, what = owner[key]
            if tag == "h" and trains and i not in flagged:
                flagged.add(i)
                ex = held[i]
                report.warn(ex.where, "leakage_near_duplicate", f"{what} has a near duplicate (word 3-shingle "
                            f"Jaccard >= {LEAK_THRESHOLD}) in train (line {train[trains[0]].where.line})",
                            "move near duplicates into one split; split by conversation or source id")
