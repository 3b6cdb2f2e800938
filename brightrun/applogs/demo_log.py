"""The demo's production log: a life-vision coaching app, as it would export its LLM calls (JSONL).

Users go through sessions step by step. For each life category they pick: a frequency flip (an
unwanted feeling or belief flipped into its empowering opposite), a category summary, ideal-state
prompts with the user's own answers, a blueprint (90-day plan) and scenes to visualize; then the
session's master assembly of all its categories, and the final assembly of the vision document.
Some sessions stop part-way. About 40% of calls carry feedback (thumbs, some 1-5 ratings, some
comments; a few thumbs-down rated 5). A few users' answers hold personal data (e-mail addresses,
phone numbers, street addresses, and rarely a card number, an IBAN or an IP address), and a handful
of rows are deliberately broken so the import has errors to report.

The columns use the app's own names (step, prompt, response, thumbs, ts...), which `guess_mapping`
recognizes. Everything is deterministic from the seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

STEPS = ("frequency_flip", "category_summary", "ideal_state_generation", "blueprint_generation",
         "scene_generation", "master_assembly", "final_assembly")
CATEGORY_STEPS = STEPS[:5]
MODELS = {"frequency_flip": "claude-haiku-4-5", "category_summary": "claude-haiku-4-5",
          "ideal_state_generation": "claude-sonnet-4-6", "blueprint_generation": "claude-sonnet-4-6",
          "scene_generation": "claude-sonnet-4-6", "master_assembly": "claude-sonnet-5",
          "final_assembly": "claude-sonnet-5"}
START = datetime(2025, 9, 1, 7, 0, tzinfo=UTC)

CATEGORIES = {
    "career": (["I feel stuck in a job that drains me", "I never get recognized for my work",
                "I'm too old to change careers", "I dread Monday mornings"],
               ["What work makes you lose track of time?", "Who do you want to work with?",
                "What would a great Tuesday look like?"],
               ["leading a small design team", "teaching what I know", "working four days a week",
                "building something of my own", "mentoring younger people"]),
    "health": (["I'm always tired", "I can't stick to exercise", "I hate how I look in photos",
                "stress eats me alive"],
               ["How do you want to feel when you wake up?", "What does movement look like in your ideal week?",
                "What do you eat on a good day?"],
               ["walking every morning before work", "sleeping eight hours", "cooking real food on Sundays",
                "running a 10k by spring", "stretching for 20 minutes at night"]),
    "relationships": (["I always end up giving more than I get", "I feel lonely even with friends",
                       "my partner and I only talk about logistics", "I avoid hard conversations"],
                      ["Who do you want around your table?", "How do you want to feel after time with your partner?",
                       "What do your friendships give you?"],
                      ["a dinner with close friends every month", "weekend hikes with my partner",
                       "calling my sister every Sunday", "saying no without guilt"]),
    "finances": (["money always runs out before the month does", "I'm scared to look at my bank balance",
                  "I'll never own a home", "debt follows me everywhere"],
                 ["What would financial ease feel like?", "What do you want your savings to make possible?",
                  "How do you want to talk about money at home?"],
                 ["paying off $8,400 of credit card debt", "saving $25,000 for a down payment by 2027",
                  "an emergency fund of six months", "investing 15% of my income", "retiring at 58"]),
    "personal_growth": (["I never finish what I start", "I compare myself to everyone",
                         "I don't know what I want anymore"],
                        ["What would you learn if you had a free year?", "Who are you becoming?",
                         "What habit would change everything?"],
                        ["reading two books a month", "learning Spanish", "journaling every evening",
                         "finishing my online course"]),
    "home": (["my apartment feels like chaos", "I don't feel at home anywhere", "clutter stresses me out"],
             ["Describe the room you love most.", "What does your home smell and sound like?",
              "Who visits you?"],
             ["a small house with a garden", "a bright kitchen with plants", "a quiet reading corner",
              "a place near the water"]),
    "fun_and_adventure": (["I work all the time and never play", "I haven't traveled in years",
                           "I forgot what I enjoy"],
                          ["Where would you go next month if nothing stopped you?",
                           "What made you laugh as a kid?", "What adventure scares and excites you?"],
                          ["a two-week trip to Japan", "learning to surf", "a weekly board game night",
                           "camping with the kids"]),
}
OPENERS = ["Beautiful.", "Here is your flip.", "Let's reframe this.", "Thank you for sharing this honestly."]
FLIP_LINES = ["I am someone who {verb} with ease and trust.", "Every day I choose {noun}, and it chooses me back.",
              "I give myself permission to want {noun}.", "My energy rises when I focus on {noun}."]
VERBS = ["grows", "creates", "leads", "rests", "receives", "learns", "connects"]
NOUNS = ["clarity", "calm confidence", "steady progress", "joy", "abundance", "deep connection", "freedom"]
BLUEPRINT = ["Week {w}: {a}.", "By day {d}, {a}.", "Each morning, {a}.", "Every Friday, review {r}."]
ACTIONS = ["block two hours for focused work", "book a conversation with a mentor", "track spending in one list",
           "prepare three healthy lunches", "write one page in your journal", "reach out to one friend",
           "set up an automatic transfer of 10% to savings", "walk 30 minutes after lunch",
           "clear one drawer or shelf", "research one course or trip"]
SCENES = ["It is a {t} morning and you {s}.", "Picture yourself {s2}, feeling {f}.",
          "You look around and notice {n}; you feel {f}."]
TIMES = ["quiet", "sunny", "crisp autumn", "slow Sunday", "rainy"]
SCENE_ACTS = ["open the window to fresh air", "pour coffee in a kitchen you love", "walk into a meeting you lead",
              "lace up your running shoes", "sit down to a dinner with people you love"]
FEELINGS = ["proud", "light", "grounded", "excited", "at peace", "fully yourself"]
COMMENTS_UP = ["Loved this, it felt like me.", "This made me tear up.", "Super helpful plan.",
               "Exactly what I needed today.", "Saving this one."]
COMMENTS_DOWN = ["Too generic.", "It ignored what I said about my kids.", "Way too long.",
                 "Felt like a fortune cookie.", "The plan is unrealistic for my budget."]
NAMES = ["Maya", "Jordan", "Priya", "Leo", "Sam", "Ana", "Chris", "Noor", "Tom", "Ivy"]
PII = {  # planted in a user's answer: (kind, text)
    "email": ["you can send the plan to {n}.{s}@example.com", "email me at {n}{i}@mailbox.org"],
    "phone": ["text me at (415) 555-{i4}", "my cell is +44 20 7946 {i4}", "call 212-555-{i4} after six"],
    "street_address": ["we just moved to {i3} Maple Street", "the studio is at {i3} Harbor Avenue"],
    "card": ["my card 4111 1111 1111 1111 keeps getting declined"],
    "account": ["my IBAN is GB82 WEST 1234 5698 7654 32"],
    "ip": ["the app crashed on my laptop, IP 192.168.{i3}.{i2}"],
}
PII_WEIGHTS = {"email": 4, "phone": 4, "street_address": 3, "card": 1, "account": 1, "ip": 1}
BAD_KINDS = ("invalid_json", "missing_output", "tokens_text", "negative_latency", "rating_out_of_range",
             "thumbs_unknown", "bad_timestamp")


@dataclass
class LogSummary:
    path: Path
    rows: int
    bad_rows: dict[int, str] = field(default_factory=dict)
    """line -> the kind of damage"""
    planted_pii: dict[str, int] = field(default_factory=dict)
    feedback_rows: int = 0
    thumbs_down_rated_5: int = 0


class _Gen:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def pick(self, items):
        return items[self.r.randrange(len(items))]

    def fill(self, template: str) -> str:
        r = self.r
        return template.format(verb=self.pick(VERBS), noun=self.pick(NOUNS), w=r.randint(1, 12), d=r.randint(7, 90),
                               a=self.pick(ACTIONS), r=self.pick(["your numbers", "what worked", "your energy"]),
                               t=self.pick(TIMES), s=self.pick(SCENE_ACTS), s2=self.pick(SCENE_ACTS).replace(
                                   "open", "opening").replace("pour", "pouring").replace("walk", "walking").replace(
                                   "lace", "lacing").replace("sit", "sitting"), f=self.pick(FEELINGS),
                               n=self.pick(NOUNS))

    def pii(self, kinds: dict[str, int]) -> str:
        planted = sum(kinds.values())
        kind = (list(PII_WEIGHTS)[planted] if planted < len(PII_WEIGHTS)  # every kind at least once
                else self.r.choices(list(PII_WEIGHTS), weights=list(PII_WEIGHTS.values()))[0])
        kinds[kind] = kinds.get(kind, 0) + 1
        r = self.r
        return self.pick(PII[kind]).format(n=self.pick(NAMES).lower(), s=self.pick(["lee", "garcia", "kim", "ross"]),
                                           i=r.randint(1, 99), i4=f"{r.randint(100, 9999):04d}",
                                           i3=r.randint(12, 250), i2=r.randint(2, 250))

    def call(self, step: str, category: str, name: str, answers: list[str], kinds: dict[str, int],
             pii_rate: float) -> tuple[str, str]:
        frequencies, questions, wishes = CATEGORIES[category]
        label = category.replace("_", " ")
        if step in ("category_summary", "ideal_state_generation") and self.r.random() < pii_rate * 2.5:
            answers = [*answers[:-1], answers[-1] + "; " + self.pii(kinds)]  # the user's own answer
        if step == "frequency_flip":
            prompt = f"Flip this frequency into its empowering opposite. Category: {label}. Frequency: \"{answers[0]}\""
            body = " ".join(self.fill(self.pick(FLIP_LINES)) for _ in range(self.r.randint(2, 4)))
            return prompt, f"{self.pick(OPENERS)} {body}"
        if step == "category_summary":
            prompt = f"Summarize what {name} shared about {label} in three sentences.\nNotes: " + " ".join(answers)
            return prompt, (f"{name} wants {label} to feel like {self.pick(NOUNS)}. Right now {answers[0].lower()}. "
                            f"The next chapter includes {self.pick(wishes)} and {self.pick(wishes)}.")
        if step == "ideal_state_generation":
            qa = "\n".join(f"Q{i + 1}: {q}\nA{i + 1}: {a}" for i, (q, a) in enumerate(zip(questions, answers[1:],
                                                                                        strict=False)))
            prompt = (f"Using {name}'s answers, write their ideal state for {label} in the present tense, "
                      f"first person.\n{qa}")
            body = " ".join(self.fill(self.pick(FLIP_LINES)) for _ in range(self.r.randint(3, 6)))
            return prompt, f"I am living my ideal {label}: {self.pick(wishes)}. {body}"
        if step == "blueprint_generation":
            prompt = f"Create a 90-day blueprint for {label} that moves {name} toward: {self.pick(wishes)}."
            steps = "\n".join(f"{i + 1}. {self.fill(self.pick(BLUEPRINT))}" for i in range(self.r.randint(4, 8)))
            return prompt, f"Your 90-day {label} blueprint:\n{steps}"
        if step == "scene_generation":
            prompt = f"Write three short scenes {name} can visualize, showing the ideal {label} already real."
            scenes = "\n\n".join(f"Scene {i + 1}. " + " ".join(self.fill(self.pick(SCENES)) for _ in range(3))
                                 for i in range(3))
            return prompt, scenes
        if step == "master_assembly":
            prompt = f"Assemble {name}'s category visions into one master vision. Categories: {answers[0]}."
            body = " ".join(self.fill(self.pick(FLIP_LINES)) for _ in range(self.r.randint(6, 10)))
            return prompt, f"{name}'s master vision. {body}"
        prompt = f"Polish {name}'s master vision into the final life-vision document, warm and concise."
        body = "\n\n".join(" ".join(self.fill(self.pick(FLIP_LINES)) for _ in range(3)) for _ in range(4))
        return prompt, f"My Life Vision, by {name}\n\n{body}"


def build_coaching_log(path: str | Path, rows: int = 2000, seed: int = 42, *, bad_rows: int = len(BAD_KINDS),
                       pii_rate: float = 0.01, feedback_rate: float = 0.4) -> LogSummary:
    """Write a JSONL log of `rows` lines (`bad_rows` of them deliberately broken) and describe it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    g, r = _Gen(seed), random.Random(seed + 1)
    summary = LogSummary(path, rows)
    bad_at = {}
    if bad_rows and rows > 1:
        lines = sorted(r.sample(range(2, rows + 1), min(bad_rows, rows - 1)))
        bad_at = {line: BAD_KINDS[i % len(BAD_KINDS)] for i, line in enumerate(lines)}
    users = [f"u_{i:05d}" for i in range(max(3, rows // 30))]
    line, session_no = 0, 0
    with open(path, "wb") as out:
        while line < rows:
            session_no += 1
            user = r.choice(users)
            name = NAMES[int(user[2:]) % len(NAMES)]
            cats = r.sample(list(CATEGORIES), r.randint(1, 3))
            steps = [(c, s) for c in cats for s in CATEGORY_STEPS] + [(None, "master_assembly"),
                                                                     (None, "final_assembly")]
            if r.random() < 0.25:  # stopped part-way
                steps = steps[:r.randint(1, len(steps))]
            at = START + timedelta(days=r.uniform(0, 75), hours=r.uniform(0, 14))
            for category, step in steps:
                if line >= rows:
                    break
                line += 1
                at += timedelta(seconds=r.uniform(20, 400))
                first = category or cats[0]
                answers = ([", ".join(c.replace("_", " ") for c in cats)] if category is None
                           else [g.pick(CATEGORIES[first][0])] + [g.pick(CATEGORIES[first][2]) for _ in range(3)])
                kinds = dict(summary.planted_pii)
                prompt, response = g.call(step, first, name, answers, kinds, pii_rate)
                record = _record(r, at, user, session_no, step, category, prompt, response, feedback_rate, summary)
                if line in bad_at:
                    out.write(_broken(record, bad_at[line]))
                    summary.bad_rows[line] = bad_at[line]
                    continue
                summary.planted_pii = kinds
                out.write(orjson.dumps(record) + b"\n")
    return summary


def _record(r: random.Random, at: datetime, user: str, session_no: int, step: str, category: str | None, prompt: str,
            response: str, feedback_rate: float, summary: LogSummary) -> dict:
    output_tokens = max(8, len(response) // 4 + r.randint(-5, 5))
    record = {
        "ts": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"), "user_id": user,
        "session_id": f"s_{session_no:06d}", "step": step, "category": category, "prompt": prompt,
        "response": response, "model": MODELS[step], "prompt_tokens": r.randint(300, 900) + len(prompt) // 4,
        "completion_tokens": output_tokens,
        "latency_ms": int(350 + output_tokens * r.uniform(12, 25) + r.lognormvariate(4, 1)),
    }
    if r.random() < feedback_rate:
        summary.feedback_rows += 1
        up = r.random() < 0.78
        record["thumbs"] = "up" if up else "down"
        if r.random() < 0.45:
            record["rating"] = r.choice([4, 5, 5]) if up else r.choice([1, 2, 2, 3])
        if not up and (r.random() < 0.06 or not summary.thumbs_down_rated_5):
            # a thumbs-down with the top rating (the first one always): must not become an SFT example
            record["rating"] = 5
        if record.get("rating") == 5 and not up:
            summary.thumbs_down_rated_5 += 1
        if r.random() < 0.25:
            record["feedback"] = r.choice(COMMENTS_UP if up else COMMENTS_DOWN)
    return record


def _broken(record: dict, kind: str) -> bytes:
    record = dict(record)
    if kind == "invalid_json":
        return orjson.dumps(record)[:-25] + b"\n"
    if kind == "missing_output":
        record.pop("response")
    elif kind == "tokens_text":
        record["completion_tokens"] = "n/a"
    elif kind == "negative_latency":
        record["latency_ms"] = -record["latency_ms"]
    elif kind == "rating_out_of_range":
        record["rating"] = 7
    elif kind == "thumbs_unknown":
        record["thumbs"] = "maybe"
    elif kind == "bad_timestamp":
        record["ts"] = "last Tuesday"
    return orjson.dumps(record) + b"\n"


def demo_log_rows(conversations: int) -> int:
    """The demo log's size for a demo of `conversations`: 2,000 rows at the default 600, fewer below."""
    return min(2000, max(300, round(conversations * 3.75)))


def import_demo_log(ws, rows: int = 2000, seed: int = 42, progress=None):
    """Write the coaching-app log to `<workspace>/imports/demo_coaching_app.jsonl` and import it."""
    from brightrun.applogs.importer import import_log

    summary = build_coaching_log(ws.root / "imports" / "demo_coaching_app.jsonl", rows, seed)
    return import_log(ws, summary.path, progress=progress)
