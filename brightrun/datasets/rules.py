"""The rules that turn feedback into training data, as pure functions (design: "Feedback into training
data").

- SFT: a judgement qualifies when it is a thumbs up with no rating, or a rating of 4 or 5 that is not a
  thumbs down. (The source SQL wrote `helpful AND rating IS NULL OR rating >= 4`, which by precedence
  also admits thumbs-down answers rated 4 or 5; here a thumbs down never qualifies.) Its quality score
  is rating x 2, or 7.0 for a bare thumbs up. A target enters when at least one current judgement
  qualifies and none is a thumbs down; its score is the mean over the qualifying judgements.
- Preference: an edit is chosen over the original; of two answers to the same context with different
  mean ratings, the higher is chosen.
- Splits: 80/10/10 by default, decided by a hash of the group (a conversation, or an app session), so
  they are reproducible on any machine and no group straddles two splits. (The source SQL drew a fresh
  random number in each `WHEN` branch, which gives 80/18/2; here one hash decides.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

SPLITS = ("train", "validation", "test")
BARE_THUMBS_UP = 7.0


def qualifies(helpful: bool | None, rating: int | None) -> bool:
    """Whether one judgement makes its target an SFT example."""
    if helpful is False:
        return False
    if rating is None:
        return helpful is True
    return rating >= 4


def judgement_score(helpful: bool | None, rating: int | None) -> float | None:
    """The quality score (0-10) of a qualifying judgement; None when it does not qualify."""
    if not qualifies(helpful, rating):
        return None
    return float(rating * 2) if rating is not None else BARE_THUMBS_UP


def sft_decision(judgements: Iterable[tuple[bool | None, int | None]]) -> tuple[float | None, str]:
    """(quality score, reason) for a target from its current judgements (one per reviewer). The score is
    None when the target does not enter; the reason says why."""
    judgements = list(judgements)
    if any(helpful is False for helpful, _ in judgements):
        return None, "a reviewer gave it a thumbs down"
    scores = [s for s in (judgement_score(h, r) for h, r in judgements) if s is not None]
    if not scores:
        return None, "no judgement is a thumbs up or a rating of 4 or 5"
    return round(sum(scores) / len(scores), 3), "ok"


def split_of(group: str, ratios: Sequence[int] = (80, 10, 10), salt: str = "") -> str:
    """The split of a group: the first 8 bytes of sha256(salt + group) as a fraction of 2^64, cut at the
    cumulative ratios. Same answer on every machine, every run and every Python."""
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ValueError("split ratios are three non-negative numbers, e.g. 80 10 10")
    digest = hashlib.sha256(f"{salt}{group}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(ratios)
    if point < ratios[0]:
        return "train"
    return "validation" if point < ratios[0] + ratios[1] else "test"


def preference_pairs(answers: list[tuple[str, float]], *, max_pairs: int = 10) -> list[tuple[int, int]]:
    """Index pairs (chosen, rejected) among answers to one context whose mean ratings differ: every
    higher-rated answer against every lower-rated one, best gaps first, at most `max_pairs`."""
    pairs = [(i, j) for i, (_, ri) in enumerate(answers) for j, (_, rj) in enumerate(answers)
             if ri > rj and answers[i][0].strip() != answers[j][0].strip()]
    pairs.sort(key=lambda p: (-(answers[p[0]][1] - answers[p[1]][1]), p))
    return pairs[:max_pairs]
