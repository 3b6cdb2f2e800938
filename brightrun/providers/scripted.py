"""The scripted provider: offline, deterministic from a seed, and honest about being scripted.

It composes a conversation that follows the persona, the arc's emotional stages and the topic.
Wording, length and quality vary by seed; quality also shifts a little per template version (by a
hash of the version) and is lower for edge-case tiers, so analytics have real differences to show.
Every record it makes carries provider "scripted" and model "scripted-1".

Requests of another action type are answered by the `Script` that the package sending them registered
(`register_script`): the quality judge registers `quality_judge`, answered from the prompt alone with the
heuristic scores of the response being judged, with small seeded noise, in the judge's schema. So this
module imports nothing above the providers.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from brightrun.errors import ProviderError
from brightrun.models.scaffolding import ArcStage
from brightrun.providers.base import Provider, ProviderRequest, ProviderResponse, ScaffoldSpec

CLIENT_FEELING = {
    "strong_negative": [
        "Honestly, I'm {e} about all of this.", "I feel so {e} right now, I barely know where to start.",
        "This whole thing has me {e}.", "I'll be straight with you: I'm {e}.",
    ],
    "negative": [
        "I'm still a bit {e}, to be honest.", "Part of me is {e} about it.",
        "I guess I'm {e}.", "I'm feeling kind of {e} here.",
    ],
    "neutral": [
        "Okay. I'm {e} now.", "I'm feeling more {e} than I was.", "Alright, I'm {e}.",
    ],
    "positive": [
        "I'm feeling {e} now.", "This makes me feel a lot more {e}.", "Honestly? I feel {e}.",
        "For the first time in a while I feel {e}.",
    ],
}
CLIENT_OPENINGS = ["Hi, thanks for making time.", "Hello.", "Hi there.", "Thanks for seeing me.", ""]
CLIENT_CLOSINGS = ["Thank you, really.", "This helped more than I expected.", "Okay, I can work with that.",
                   "I think I know what to do next.", "Thanks. Let's do it."]
ACKNOWLEDGE = [
    "It makes complete sense to feel {e} about this, {name}.",
    "Thank you for telling me you're feeling {e}; that's a very common reaction.",
    "I hear that you're {e}, and we'll take this one step at a time.",
    "Feeling {e} here is understandable, {name}. Many people in your position feel the same.",
]
ASK = [
    "Before I suggest anything, can you tell me a bit more about {concern}?",
    "Can I ask a couple of questions first? How are you thinking about {concern}?",
    "What matters most to you here: {concern}, or something else?",
    "Before we go further, what does a good outcome look like for you?",
]
BRIDGE = ["Here's how I'd think about it.", "A useful way to approach this:", "One thing that often helps:",
          "Based on what you've told me,", "Let's look at it this way."]
NEXT_STEP = [
    "As a next step, let's write down the numbers together so you can see where you stand.",
    "For this week, pick one small action and we'll review it at our next meeting.",
    "I'll send you a short summary, and we can adjust the plan as your situation changes.",
    "Let's set a check-in in a month to see how this feels in practice.",
]
GENERIC = ["There are a lot of options to consider.", "Everyone's situation is different.",
           "It depends on many factors.", "You should think about your goals."]


def _band(stage: ArcStage) -> str:
    if stage.valence <= -0.5:
        return "strong_negative"
    if stage.valence < -0.05:
        return "negative"
    if stage.valence < 0.25:
        return "neutral"
    return "positive"


def _first_name(name: str) -> str:
    return name.split(" - ")[0].split()[0]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text else text


GUIDANCE = {"mirror the client's words": 0.12, "one concrete action": 0.12}
"""Instructions the scripted model "follows": each one in a template's system prompt or body raises the
latent quality of its conversations by this much, so a prompt change can make a version truly better
(experiments test on it). None of the library's templates uses them."""


def quality_of(spec: ScaffoldSpec, rng: random.Random) -> float:
    """The latent quality (0..1) of one scripted conversation: a Beta(5, 2) draw, shifted a little by the
    template version's hash, down for edge cases, and up for each GUIDANCE instruction in the prompt."""
    shift = (int(hashlib.sha256(spec.template_version.encode()).hexdigest()[:4], 16) / 65535 - 0.5) * 0.2
    tier = -0.12 if spec.template.tier == "edge_case" else 0.0
    text = f"{spec.template.system_prompt}\n{spec.template.body}".lower()
    guided = sum(boost for phrase, boost in GUIDANCE.items() if phrase in text)
    return min(1.0, max(0.0, rng.betavariate(5, 2) + shift + tier + guided))


def compose(spec: ScaffoldSpec, seed: int) -> dict:
    """A conversation as {'title', 'turns'} following the scaffold, deterministic for `seed`."""
    rng = random.Random(seed)
    q = quality_of(spec, rng)
    persona, arc, topic = spec.persona, spec.arc, spec.topic
    name = _first_name(persona.name)
    questions = rng.sample(topic.client_questions, len(topic.client_questions))
    points = rng.sample(topic.key_points, len(topic.key_points))
    concerns = [_lower_first(c.rstrip(".")) for c in persona.concerns]
    client_turns = spec.turn_count // 2
    stock_opening = rng.choice(ACKNOWLEDGE)  # low quality repeats one stock opening
    # Some clients do not follow the arc: from some turn on they stay where they were (more often when
    # the advice is weak, and on edge-case arcs). A separate stream, so the rest of the text is unchanged.
    drift = random.Random(seed ^ 0x5EED)
    stuck_p = 0.45 * (1 - q) + (0.1 if arc.tier == "edge_case" else 0.0)
    stuck_from = drift.randint(1, max(1, client_turns - 1)) if client_turns > 2 and drift.random() < stuck_p else None
    turns: list[dict] = []
    for i in range(client_turns):
        stage = arc.stages[round(i * (len(arc.stages) - 1) / max(1, client_turns - 1))]
        feeling = rng.choice(CLIENT_FEELING[_band(stage)]).format(e=stage.emotion)
        if stuck_from is not None and i >= stuck_from:
            stage = arc.stages[round((stuck_from - 1) * (len(arc.stages) - 1) / max(1, client_turns - 1))]
            feeling = drift.choice(CLIENT_FEELING[_band(stage)]).format(e=stage.emotion)
        parts = []
        if i == 0:
            parts += [rng.choice(CLIENT_OPENINGS), feeling, f"My biggest worry is {concerns[0]}."]
        else:
            parts.append(feeling)
        if i == client_turns - 1 and client_turns > 1:
            parts.append(rng.choice(CLIENT_CLOSINGS))
        else:
            parts.append(questions[i % len(questions)])
        if 0 < i < client_turns - 1 and len(concerns) > 1 and rng.random() < 0.3:
            parts.append(f"I'm also thinking about {rng.choice(concerns[1:])}.")
        turns.append({"role": "user", "content": " ".join(p for p in parts if p)})

        advisor: list[str] = []
        good = rng.random() < q
        opening = rng.choice(ACKNOWLEDGE) if good else stock_opening
        advisor.append(opening.format(e=stage.emotion, name=name))
        if i < client_turns - 1 and good and (i == 0 or rng.random() < 0.4):
            advisor.append(rng.choice(ASK).format(concern=rng.choice(concerns)))
        if good:
            count = 1 + (rng.random() < q) + (rng.random() < q * 0.5)
            advisor.append(rng.choice(BRIDGE) + " " + " ".join(points[(i + k) % len(points)] for k in range(count)))
            if rng.random() < q:
                advisor.append(rng.choice(NEXT_STEP))
        else:
            advisor.append(" ".join(rng.sample(GENERIC, 2)))
            if rng.random() < 0.5:
                advisor.append(points[i % len(points)])
        if rng.random() < 0.08 * (1 - q):
            advisor = advisor * 3  # a rambling, repetitive answer
        turns.append({"role": "assistant", "content": " ".join(advisor)})
    title = rng.choice([
        f"{name} on {topic.name.lower()}", f"{topic.name}: {arc.name}", f"{name}: {arc.start_emotion} about "
        f"{topic.name.lower()}", f"{topic.name} with {name}",
    ])
    return {"title": title, "turns": turns}


@dataclass(frozen=True)
class Script:
    """How the scripted provider answers one action type: `parse` reads the prompt (ValueError: the request
    was not built by the package that registered the script; `fix` says what to do), `answer` makes the
    answer from what `parse` returned and a seeded random, `cut_off` is the truncated text of a failed
    attempt, `tag` names the script in seeds and messages."""

    parse: Callable[[str], Any]
    answer: Callable[[Any, random.Random], dict]
    cut_off: str
    tag: str
    fix: str


SCRIPTS: dict[str, Script] = {}


def register_script(action_type: str, script: Script) -> None:
    """Answer requests of `action_type` with `script` (registered by the package that sends them)."""
    SCRIPTS[action_type] = script


class ScriptedProvider(Provider):
    """Deterministic offline provider. `failure_rate` makes that share of first attempts answer
    malformed, truncated JSON (a retry recovers); `permanent_failure_rate` makes that share of items
    fail on every attempt. Both exercise retries and failure records."""

    name = "scripted"
    default_model = "scripted-1"
    is_scripted = True
    cacheable = False  # free and deterministic: nothing to save by caching

    def __init__(self, failure_rate: float = 0.0, permanent_failure_rate: float = 0.0, seed: int = 0) -> None:
        for name, rate in (("failure_rate", failure_rate), ("permanent_failure_rate", permanent_failure_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ProviderError(f"{name} must be between 0 and 1. Fix: pass a share such as 0.05.")
        self.failure_rate = failure_rate
        self.permanent_failure_rate = permanent_failure_rate
        self.seed = seed

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        script = SCRIPTS.get(request.action_type)
        if script is not None:
            return self._scripted(request, script)
        if request.scaffold is None:
            raise ProviderError(
                "the scripted provider needs the request's scaffold. Fix: build requests with "
                "brightrun.generation.build_request.", error_type="bad_request",
            )
        started = time.perf_counter()
        fails_always = random.Random(f"{self.seed}:{request.seed}:permanent").random() < self.permanent_failure_rate
        fails_now = request.attempt == 1 and random.Random(f"{self.seed}:{request.seed}:first").random() < self.failure_rate
        if fails_always or fails_now:
            text = '{"title": "cut short", "turns": [{"role": "user", "content": "Hi'
            stop = "max_tokens"
        else:
            text = orjson.dumps(compose(request.scaffold, request.seed)).decode()
            stop = "end_turn"
        return ProviderResponse(
            text=text, model=self.default_model,
            input_tokens=(len(request.system) + len(request.prompt)) // 4,
            output_tokens=len(text) // 4, stop_reason=stop,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def _scripted(self, request: ProviderRequest, script: Script) -> ProviderResponse:
        """An answer from a registered script, with the same rates of cut-off first answers and permanent
        failures as conversations."""
        started = time.perf_counter()
        try:
            parsed = script.parse(request.prompt)
        except ValueError as exc:
            raise ProviderError(f"scripted {script.tag}: {exc}. Fix: {script.fix}.", error_type="bad_request") from None
        fails_always = random.Random(
            f"{self.seed}:{request.seed}:{script.tag}-permanent").random() < self.permanent_failure_rate
        fails_now = request.attempt == 1 and random.Random(
            f"{self.seed}:{request.seed}:{script.tag}-first").random() < self.failure_rate
        if fails_always or fails_now:
            text, stop = script.cut_off, "max_tokens"
        else:
            answer = script.answer(parsed, random.Random(f"{self.seed}:{request.seed}:{script.tag}"))
            text, stop = orjson.dumps(answer).decode(), "end_turn"
        return ProviderResponse(
            text=text, model=self.default_model, input_tokens=(len(request.system) + len(request.prompt)) // 4,
            output_tokens=len(text) // 4, stop_reason=stop, latency_ms=(time.perf_counter() - started) * 1000,
        )
