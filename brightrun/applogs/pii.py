"""Personal data in imported app logs: detect it, count it per column, redact it.

Hand-written regular expressions, checksums and context rules: no offline PII library fits the
stack (Presidio needs spaCy models, scrubadub is unmaintained), and these rules are small enough to
read. They aim at low false positives on ordinary prose: money amounts ("$250,000"), years, dates,
times, percentages and version numbers are not personal data and are left alone.

What counts as each kind (the placeholder it is replaced with in brackets):

- email [EMAIL]: ``name@domain.tld``.
- ip [IP]: IPv4 dotted quads with octets 0-255; IPv6 in full (8 groups) or compressed form with
  ``::`` and at least one group on its left (``2001:db8::1``, ``fe80::1``; a bare ``::1`` is not).
- card [CARD]: 13 to 19 digits, contiguous or in groups of four (or 4-6-5) split by the same space or
  dash, that pass the Luhn checksum and start like a real card (Visa 4, Mastercard 51-55 and
  2221-2720, Amex 34/37, Discover 6011/644-649/65, JCB 35, Diners 30/36/38, UnionPay 62).
- account [ACCOUNT]: an IBAN with a valid mod-97 checksum; a number of 6 to 20 digits (spaces or
  dashes allowed) written shortly after "account", "acct", "a/c", "routing", "sort code" or "BSB"
  (the word stays, the number goes); and any other bare run of 12 to 19 digits that is not a card.
- phone [PHONE]: ``+`` and a country code followed by digit groups; ``(415) 555-0132``;
  ``415-555-0132`` / ``415.555.0132`` / ``1-415-555-0132``; national numbers with a trunk 0
  (``020 7946 0958``, ``07700 900123``); bare 10-digit North American numbers (``4155550132``).
  Seven-digit local numbers (``555-0132``) are not detected: too close to other numbers.
- street_address [ADDRESS]: a house number, one to four capitalised words (or ordinals like 42nd)
  and a street suffix (Street, St, Avenue, Ave, Road, Rd, Boulevard, Blvd, Lane, Ln, Drive, Dr,
  Court, Ct, Place, Pl, Way, Terrace, Circle, Parkway, Highway, Square, ...), with an optional
  unit (``Apt 4B``). Lower-case addresses are not detected.

Kinds are found in a fixed order on the text with earlier finds already replaced (email, account
IBANs, ip, card, other accounts, phone, street_address), so a number is counted once, as the first
kind that claims it.

`pii_counts`, `redact_series` and `redact_frame` work on whole columns: email, ip, phone and
address use the same patterns through polars string functions; rows that might hold a card or an
account (which need a checksum or context) go through the Python rules. Both give the same result
as `detect` and `redact` row by row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import polars as pl

KINDS = ("email", "phone", "card", "account", "ip", "street_address")
PLACEHOLDERS = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]", "account": "[ACCOUNT]",
                "ip": "[IP]", "street_address": "[ADDRESS]"}

# -- patterns shared by Python `re` and polars (Rust `regex`): no look-around, no back-references --

EMAIL = r"\b[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b"

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_H = r"[0-9A-Fa-f]{1,4}"
IP = (rf"\b(?:{_H}:){{7}}{_H}\b"                      # IPv6, full
      rf"|\b(?:{_H}:){{1,6}}:{_H}(?::{_H}){{0,5}}\b"   # IPv6, compressed
      rf"|\b(?:{_OCTET}\.){{3}}{_OCTET}\b")          # IPv4

PHONE = (r"\+[1-9][0-9]{0,2}[-. ]?(?:\([0-9]{1,4}\)[-. ]?)?[0-9]{2,4}(?:[-. ]?[0-9]{2,4}){1,4}\b"
         r"|\([0-9]{2,5}\)[-. ]?[0-9]{3,4}[-. ]?[0-9]{3,4}\b"
         r"|\b(?:1[-. ])?[0-9]{3}[-. ][0-9]{3}[-. ][0-9]{4}\b"
         r"|\b0[0-9]{2,4}[-. ][0-9]{3,4}[-. ]?[0-9]{3,4}\b"
         r"|\b1?[2-9][0-9]{2}[2-9][0-9]{6}\b")

_SUFFIX = ("Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way|Terrace|"
           "Terr|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Crescent|Close|Row|Trail|Alley")
STREET_ADDRESS = (rf"\b[0-9]{{1,6}}[A-Za-z]?(?: +(?:[A-Z][A-Za-z'.-]*|[0-9]{{1,3}}(?:st|nd|rd|th))){{1,4}}"
                  rf" +(?:{_SUFFIX})\b(?:,? +(?:Apt|Apartment|Suite|Ste|Unit|#) *[A-Za-z0-9-]+)?")

# Rows that might hold an IBAN, a card or an account number: only these need the Python rules.
_NEEDS_PYTHON = (r"(?i:[a-z]{2}[0-9]{2} ?[a-z0-9]{4}|[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{2}"
                 r"|\b(?:account|acct|a/c|routing|sort\s+code|bsb)\b[^0-9\n]{0,25}[0-9])")

# -- Python-only patterns (validated by checksum or context) --

_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,3})?"
                   r"(?![A-Za-z0-9])")
_CARD = re.compile(r"(?<![0-9A-Za-z])(?:[0-9]{4}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{1,7}|[0-9]{4}([ -])[0-9]{6}\2[0-9]{5}"
                   r"|[0-9]{13,19})(?![0-9A-Za-z])")
_ACCOUNT_CONTEXT = re.compile(r"(?i:\b(?:account|acct|a/c|routing|sort\s+code|bsb)\b)[^0-9\n]{0,25}?(?<![$€£¥])"
                              r"([0-9](?:[ -]?[0-9]){5,19})(?![0-9])")
_ACCOUNT_BARE = re.compile(r"(?<![0-9A-Za-z.,$€£¥])[0-9]{12,19}(?![0-9A-Za-z%]|[.,][0-9])")

_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2(?:2[2-9][1-9]|2[3-9][0-9]|[3-6][0-9]{2}|7[01][0-9]|720)|3[47]|6011|"
                          r"64[4-9]|65|35|3[068]|62)")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_ok(match: re.Match) -> bool:
    digits = re.sub(r"[ -]", "", match.group(0))
    return 13 <= len(digits) <= 19 and bool(_CARD_PREFIX.match(digits)) and luhn_ok(digits)


def iban_ok(text: str) -> bool:
    """Whether `text` (spaces allowed) is an IBAN with a valid mod-97 checksum."""
    code = text.replace(" ", "").upper()
    if not 15 <= len(code) <= 34 or not code[:2].isalpha() or not code[2:4].isdigit():
        return False
    moved = code[4:] + code[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


# The steps in order: (kind, pattern, validator, the group to replace (0: the whole match)).
_Step = tuple[str, re.Pattern, Callable[[re.Match], bool] | None, int]
_STEPS: list[_Step] = [
    ("email", re.compile(EMAIL), None, 0),
    ("account", _IBAN, lambda m: iban_ok(m.group(0)), 0),
    ("ip", re.compile(IP), None, 0),
    ("card", _CARD, _card_ok, 0),
    ("account", _ACCOUNT_CONTEXT, None, 1),
    ("account", _ACCOUNT_BARE, None, 0),
    ("phone", re.compile(PHONE), None, 0),
    ("street_address", re.compile(STREET_ADDRESS), None, 0),
]
# The steps the vectorized path runs itself (the others are taken by rows matching _NEEDS_PYTHON).
_VECTOR_STEPS = [("email", EMAIL), ("ip", IP), ("phone", PHONE), ("street_address", STREET_ADDRESS)]
_ANYTHING = "|".join(f"(?:{p})" for _, p in _VECTOR_STEPS) + "|" + _NEEDS_PYTHON
"""A row that matches none of these holds no personal data of any kind."""


def _scan(text: str, counts: dict[str, int] | None) -> str:
    for kind, pattern, valid, group in _STEPS:
        found = 0

        def replace(m: re.Match, kind: str = kind, valid=valid, group: int = group) -> str:
            nonlocal found
            if valid is not None and not valid(m):
                return m.group(0)
            found += 1
            if group == 0:
                return PLACEHOLDERS[kind]
            whole, start = m.group(0), m.start()
            return whole[:m.start(group) - start] + PLACEHOLDERS[kind] + whole[m.end(group) - start:]

        text = pattern.sub(replace, text)
        if counts is not None and found:
            counts[kind] += found
    return text


def detect(text: str | None) -> dict[str, int]:
    """How many of each kind of personal data `text` holds: {kind: count} for every kind in KINDS."""
    counts = dict.fromkeys(KINDS, 0)
    if text:
        _scan(text, counts)
    return counts


def redact(text: str | None) -> str | None:
    """`text` with every detected item replaced by its placeholder ([EMAIL], [PHONE], [CARD], [ACCOUNT],
    [IP], [ADDRESS]); None stays None."""
    if not text:
        return text
    return _scan(text, None)


def redact_counted(text: str | None) -> tuple[str | None, dict[str, int]]:
    """(redact(text), detect(text)) in one pass."""
    counts = dict.fromkeys(KINDS, 0)
    if not text:
        return text, counts
    return _scan(text, counts), counts


# -- whole columns ---------------------------------------------------------------------------------


def _column_pass(series: pl.Series, *, count: bool) -> tuple[pl.Series, dict[str, tuple[int, int]]]:
    """(the redacted column, {kind: (items found, rows with at least one)}) for a String column."""
    series = series.cast(pl.String)
    totals = {kind: [0, 0] for kind in KINDS}
    # One scan finds the few rows that may hold anything; only those are looked at closely.
    hit = series.str.contains(_ANYTHING).fill_null(False)
    if not hit.any():
        return series, {kind: (0, 0) for kind in KINDS}
    index = hit.arg_true()
    frame = pl.DataFrame({"text": series.gather(index)}).with_row_index("_i")
    slow_mask = frame["text"].str.contains(_NEEDS_PYTHON)
    fast, slow = frame.filter(~slow_mask), frame.filter(slow_mask)
    text = pl.col("text")
    for kind, pattern in _VECTOR_STEPS:
        hits = fast.select(text.str.count_matches(pattern).alias("n"))["n"]
        n = int(hits.sum())
        if n:
            totals[kind][0] += n
            totals[kind][1] += int((hits > 0).sum())
            fast = fast.with_columns(pl.when(hits > 0).then(text.str.replace_all(pattern, PLACEHOLDERS[kind]))
                                     .otherwise(text).alias("text"))
    if slow.height:
        redacted = []
        for value in slow["text"].to_list():
            counts = dict.fromkeys(KINDS, 0)
            redacted.append(_scan(value, counts if count else None))
            for kind, n in counts.items():
                if n:
                    totals[kind][0] += n
                    totals[kind][1] += 1
        slow = slow.with_columns(pl.Series("text", redacted, dtype=pl.String))
    changed = pl.concat([fast, slow]).sort("_i")["text"]
    return series.clone().scatter(index, changed), {kind: (a, b) for kind, (a, b) in totals.items()}


def pii_counts(frame: pl.DataFrame, columns: Iterable[str]) -> pl.DataFrame:
    """Personal data per column and kind: columns `column`, `kind`, `count` (items found) and `rows`
    (rows holding at least one), a row for every kind of every column (zeros included)."""
    rows = []
    for column in columns:
        if column not in frame.columns:
            raise KeyError(f"no column {column!r} in the frame (it has {', '.join(frame.columns)})")
        _, totals = _column_pass(frame[column], count=True)
        rows += [{"column": column, "kind": kind, "count": totals[kind][0], "rows": totals[kind][1]}
                 for kind in KINDS]
    return pl.DataFrame(rows, schema={"column": pl.String, "kind": pl.String, "count": pl.Int64, "rows": pl.Int64})


def redact_series(series: pl.Series) -> pl.Series:
    """The column with every detected item replaced by its placeholder (nulls stay null)."""
    return _column_pass(series, count=False)[0]


def redact_frame(frame: pl.DataFrame, columns: Iterable[str]) -> pl.DataFrame:
    """`frame` with `columns` (String) redacted; other columns untouched."""
    return frame.with_columns([redact_series(frame[c]) for c in columns])
