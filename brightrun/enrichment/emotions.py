"""An offline emotion lexicon: emotion -> (valence, intensity, cue words).

Detection is lexical: a client turn expresses an emotion when one of its cue words appears as a
whole word. Valence and intensity of a turn are the means over the emotions found (0.0 and 0.2 when
none is found). It needs no API and is deterministic; a later stage may add a model-based judge.
"""

from __future__ import annotations

import re

LEXICON: dict[str, tuple[float, float, tuple[str, ...]]] = {
    "confused": (-0.5, 0.5, ("confused", "confusing", "lost", "don't understand", "makes no sense", "puzzled")),
    "curious": (0.0, 0.4, ("curious", "wondering", "interested to know", "intrigued")),
    "engaged": (0.4, 0.5, ("engaged", "following you", "this is helpful", "makes sense now")),
    "clear": (0.7, 0.5, ("clear", "clarity", "crystal clear", "i get it")),
    "overwhelmed": (-0.7, 0.8, ("overwhelmed", "overwhelming", "too much", "drowning", "swamped")),
    "hesitant": (-0.3, 0.4, ("hesitant", "not sure", "unsure", "reluctant")),
    "relieved": (0.5, 0.5, ("relieved", "relief", "weight off", "phew")),
    "motivated": (0.6, 0.6, ("motivated", "ready to start", "fired up", "eager")),
    "empowered": (0.8, 0.7, ("empowered", "in control", "capable", "i can do this")),
    "anxious": (-0.6, 0.7, ("anxious", "anxiety", "nervous", "worried", "worry", "stressed")),
    "reassured": (0.2, 0.4, ("reassured", "reassuring", "comforting", "that helps")),
    "hopeful": (0.4, 0.5, ("hopeful", "hope", "optimistic")),
    "confident": (0.7, 0.6, ("confident", "confidence", "sure of", "feel good about")),
    "ashamed": (-0.8, 0.8, ("ashamed", "embarrassed", "shame", "humiliated", "stupid")),
    "guarded": (-0.4, 0.5, ("guarded", "careful", "wary", "cautious")),
    "accepting": (0.6, 0.4, ("accepting", "accept", "at peace", "okay with")),
    "skeptical": (-0.4, 0.5, ("skeptical", "doubt", "doubtful", "not convinced", "prove")),
    "probing": (-0.1, 0.4, ("probing", "what's the catch", "how exactly", "show me")),
    "respectful": (0.3, 0.3, ("respectful", "respect", "fair point", "appreciate")),
    "trusting": (0.6, 0.5, ("trusting", "trust", "believe you", "rely on")),
    "frustrated": (-0.6, 0.7, ("frustrated", "frustrating", "fed up", "annoyed", "sick of")),
    "impatient": (-0.3, 0.6, ("impatient", "just tell me", "get to the point", "hurry")),
    "interested": (0.2, 0.4, ("interested", "interesting", "tell me more")),
    "afraid": (-0.7, 0.8, ("afraid", "scared", "fear", "terrified", "frightened")),
    "uneasy": (-0.3, 0.5, ("uneasy", "unsettled", "on edge")),
    "secure": (0.7, 0.5, ("secure", "safe", "protected", "covered")),
    "panicked": (-0.9, 0.95, ("panicked", "panic", "panicking", "freaking out", "desperate")),
    "distressed": (-0.6, 0.8, ("distressed", "distress", "upset", "shaken")),
    "focused": (-0.1, 0.5, ("focused", "focus", "one step at a time")),
    "steady": (0.3, 0.4, ("steady", "stable", "grounded", "calm")),
    "angry": (-0.8, 0.9, ("angry", "furious", "outraged", "livid", "mad")),
    "defensive": (-0.5, 0.6, ("defensive", "not my fault", "don't blame me")),
    "calmer": (0.0, 0.4, ("calmer", "calming down", "cooler")),
    "resolved": (0.5, 0.5, ("resolved", "settled", "sorted out", "closure")),
    "grieving": (-0.8, 0.8, ("grieving", "grief", "loss", "miss him", "miss her", "mourning")),
    "numb": (-0.5, 0.4, ("numb", "foggy", "autopilot", "can't think")),
    "steadier": (-0.1, 0.4, ("steadier", "a bit better", "more solid")),
    "purposeful": (0.3, 0.5, ("purposeful", "purpose", "direction", "meaningful")),
}

_PATTERNS = {
    emotion: re.compile(r"\b(?:" + "|".join(re.escape(c) for c in cues) + r")\b", re.IGNORECASE)
    for emotion, (_, _, cues) in LEXICON.items()
}

METHOD = "lexicon-v1"


def detect(text: str) -> tuple[list[str], float, float]:
    """(emotions found in order of first appearance, mean valence, mean intensity)."""
    found: list[tuple[int, str]] = []
    for emotion, pattern in _PATTERNS.items():
        match = pattern.search(text)
        if match:
            found.append((match.start(), emotion))
    emotions = [e for _, e in sorted(found)]
    if not emotions:
        return [], 0.0, 0.2
    valence = sum(LEXICON[e][0] for e in emotions) / len(emotions)
    intensity = sum(LEXICON[e][1] for e in emotions) / len(emotions)
    return emotions, round(valence, 3), round(intensity, 3)
