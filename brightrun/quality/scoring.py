"""Heuristic quality scores of advisor responses, and arc adherence of conversations.

Every dimension is in [0, 1]; the overall score is 10 x their weighted mean. The formulas:

- empathy: 1 when the response opens (first two sentences) with an acknowledgement cue and names a
  feeling; 0.5 with the cue alone; 0 otherwise.
- clarity: from the mean sentence length L in words: 1 for 8 <= L <= 22, falling linearly to 0 at
  L <= 3 and at L >= 40.
- actionable: min(1, concrete-action markers / 2) (markers: "next step", "let's", "start by",
  "set up", "write down", "automate", "review", "aim for", ...).
- asks_first: 1 when the response asks a question; the last advisor turn is exempt (scores 1).
- length_balance: 1 for 40 to 180 words; w / 40 below; 1 - (w - 180) / 180 above (floored at 0).
- repetition: 1 - repeated sentences / sentences (sentences compared after normalizing).
- overall = 10 x (0.20 empathy + 0.15 clarity + 0.20 actionable + 0.15 asks_first
  + 0.15 length_balance + 0.15 repetition).

Arc adherence of a conversation: over client turns where an emotion was detected, 1 - mean
|detected valence - intended stage valence| / 2 (null when no emotion was detected); the emotion
match rate is the share of client turns whose primary detected emotion is the intended stage's.
"""

from __future__ import annotations

import re

from brightrun.quality.duplicates import normalize

WEIGHTS = {"empathy": 0.20, "clarity": 0.15, "actionable": 0.20, "asks_first": 0.15,
           "length_balance": 0.15, "repetition": 0.15}
DIMENSIONS = list(WEIGHTS)
VERSION = "heuristic-v1"

_SENTENCES = re.compile(r"(?<=[.?!])\s+")
_ACK = re.compile(r"\b(makes (complete )?sense|understandable|i hear|thank you for (telling|sharing)|"
                  r"that's (a )?(very )?(common|normal)|i understand|it's okay|you're not alone)\b", re.I)
_FEELING = re.compile(r"\b(feel\w*|worr\w*|anxi\w*|afraid|scared|stress\w*|frustrat\w*|overwhelm\w*|"
                      r"confus\w*|ashamed|angry|griev\w*|upset|nervous|emotion\w*|[a-z]+ed about)\b", re.I)
_ACTIONS = re.compile(r"\b(next step|let's|start (by|with)|set up|write down|automate|review|aim (for|first)|"
                      r"pick one|schedule|check (in|the|your)|list|compare|call|open an?|move \w+ into)\b", re.I)


def _clip(value: float) -> float:
    return max(0.0, min(1.0, value))


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCES.split(text.strip()) if s.strip()]


def empathy(text: str) -> float:
    opening = " ".join(sentences(text)[:2])
    if not _ACK.search(opening):
        return 0.0
    return 1.0 if _FEELING.search(opening) else 0.5


def clarity(text: str) -> float:
    parts = sentences(text)
    if not parts:
        return 0.0
    mean = sum(len(s.split()) for s in parts) / len(parts)
    if 8 <= mean <= 22:
        return 1.0
    if mean < 8:
        return _clip((mean - 3) / 5)
    return _clip((40 - mean) / 18)


def actionable(text: str) -> float:
    return _clip(len(_ACTIONS.findall(text)) / 2)


def asks_first(text: str, is_last: bool) -> float:
    return 1.0 if is_last or "?" in text else 0.0


def length_balance(text: str) -> float:
    words = len(text.split())
    if words < 40:
        return words / 40
    if words <= 180:
        return 1.0
    return _clip(1 - (words - 180) / 180)


def repetition(text: str) -> float:
    parts = [normalize(s) for s in sentences(text)]
    if not parts:
        return 0.0
    return 1 - (len(parts) - len(set(parts))) / len(parts)


def score_response(text: str, *, is_last: bool) -> dict[str, float]:
    """Every dimension of one advisor response, plus `quality_score` (0 to 10)."""
    scores = {
        "empathy": empathy(text), "clarity": clarity(text), "actionable": actionable(text),
        "asks_first": asks_first(text, is_last), "length_balance": length_balance(text),
        "repetition": repetition(text),
    }
    scores = {k: round(v, 3) for k, v in scores.items()}
    scores["quality_score"] = round(10 * sum(WEIGHTS[k] * v for k, v in scores.items()), 2)
    return scores


def arc_adherence(detected: list[float | None], intended: list[float]) -> float | None:
    """1 - mean |detected - intended| / 2 over turns with a detection; None when there is none."""
    gaps = [abs(d - i) for d, i in zip(detected, intended, strict=True) if d is not None]
    return round(_clip(1 - sum(gaps) / len(gaps) / 2), 3) if gaps else None
