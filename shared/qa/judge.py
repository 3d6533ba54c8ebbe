"""Layer 3, the model judge: one fast-tier call per guideline, each answering only for that guideline.

Guidelines come from the kit (each voice and tone descriptor, each prohibited claim, each plain-words
guideline) and from the self-correction config's critique aspects. One call sees every piece of copy
under review in one language, so a campaign's channels cost one call per guideline and language, not one per
channel. Each call is prompted in the copy's language: it names the language and script the copy is in, asks
for a native reader's judgement, and wants evidence quoted and fixes written in that language. Calls run
concurrently; a failing call raises (`UpstreamUnavailable` lets the step be retried).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.brandkit import BrandKit
from shared.models.context import shared_context
from shared.models.spend import with_caller_context
from shared.ports import Generated, StructuredModel
from shared.qa.content import Copy
from shared.qa.report import Finding, Ledger
from shared.safety.untrusted import quote_json, with_rule
from shared.writing.specs import LANGUAGE_NAMES, language_label

CritiqueAspect = Literal["clarity", "persuasiveness", "brand_alignment", "audience_fit", "call_to_action"]
ASPECTS: dict[str, str] = {
    "clarity": "Every field is clear on a first read: plain words, one idea per sentence, nothing ambiguous.",
    "persuasiveness": "The copy gives the reader a concrete reason to act: a benefit they care about, not only "
                      "features.",
    "brand_alignment": "The copy sounds like this brand as its voice, tone and do/don't examples describe it.",
    "audience_fit": "The copy speaks to the brand's personas: their goals and pains, in words they use.",
    "call_to_action": "The copy asks the reader to do one clear thing.",
}
SYSTEM_CORE = (
    "You review marketing copy against exactly one brand guideline. Judge every field of every item, but only "
    "against that guideline; ignore any other problem. A field violates the guideline only if it clearly breaks "
    "it. For each violation quote the offending words as evidence and say how to fix the field, in the copy's "
    "language. Return no violations when every field meets the guideline."
)
SYSTEM = with_rule(SYSTEM_CORE)


class JudgeViolation(BaseModel):
    """One field that breaks the guideline."""

    item: str = Field(description="The key of the item the field belongs to, as given in the copy JSON.")
    field: str = Field(description="The field name as given, e.g. 'subject' or 'posts[2]'.")
    evidence: str = Field(description="The words that break the guideline, quoted from the field.")
    fix: str = Field(description="How to change the field so it meets the guideline.")


class JudgeVerdict(BaseModel):
    """The judge's answer for one guideline."""

    violations: list[JudgeViolation] = Field(default_factory=list, max_length=40)


@dataclass(frozen=True)
class Guideline:
    """One thing the judge checks."""

    id: str
    text: str


def guidelines(kit: BrandKit, aspects: Sequence[str]) -> list[Guideline]:
    """The guidelines the judge tests, from the kit and the configured critique aspects."""
    out = [Guideline(f"voice:{_slug(d)}", f"The copy's voice is {d}.") for d in kit.voice]
    out += [Guideline(f"tone:{_slug(d)}", f"The copy's tone is {d}.") for d in kit.tone]
    out += [Guideline(f"claim:{c.id}", f"The copy does not state, imply or paraphrase this prohibited claim: "
                                       f"{c.description}") for c in kit.prohibited_claims]
    out += [Guideline(f"guideline:{i + 1}", text) for i, text in enumerate(kit.guidelines)]
    out += [Guideline(f"aspect:{a}", ASPECTS[a]) for a in aspects if a in ASPECTS]
    return out


def judge(items: Mapping[str, Copy], ledgers: Mapping[str, Ledger], model: StructuredModel, *,
          aspects: Sequence[str], max_workers: int = 8) -> list[dict[str, Any]]:
    """Judge every item once per guideline; record per-field tests and findings; return token usage."""
    if not items:
        return []
    kit = next(iter(items.values())).kit
    tested = guidelines(kit, aspects)
    if not tested:
        return []
    groups: dict[str, dict[str, Copy]] = {}
    for key, copy in items.items():
        groups.setdefault(copy.language, {})[key] = copy
    usage: list[dict[str, Any]] = []
    for language, group in sorted(groups.items()):
        usage += _judge_group(language, group, ledgers, model, tested, kit, max_workers=max_workers,
                              suffix="" if len(groups) == 1 else f":{language}")
    return usage


def _judge_group(language: str, items: Mapping[str, Copy], ledgers: Mapping[str, Ledger], model: StructuredModel,
                 tested: list[Guideline], kit: BrandKit, *, max_workers: int, suffix: str) -> list[dict[str, Any]]:
    context = _context(kit, items, language)
    with shared_context(context), ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(tested)))) as pool:
        answers = list(pool.map(with_caller_context(lambda g: _ask(model, g, context, language)), tested))
    usage: list[dict[str, Any]] = []
    for guideline, answer in zip(tested, answers, strict=True):
        usage.append({"node": f"qa:judge:{guideline.id}{suffix}", **answer.usage.as_dict()})
        for key, copy in items.items():
            for name in copy.field_names:
                ledgers[key].test(guideline.id, name, "judge", guideline.text)
        for violation in answer.value.violations:
            placed = _place(violation, items)
            if placed is None:
                continue
            key, name, path = placed
            ledgers[key].fail(Finding(field=name, path=path, guideline=guideline.id, layer="judge",
                                      message=f"`{path}` fails '{guideline.text}': {violation.fix}",
                                      evidence=violation.evidence or None, suggestion=violation.fix or None,
                                      blocking=False), guideline.text)
    return usage


def _ask(model: StructuredModel, guideline: Guideline, context: str, language: str) -> Generated[JudgeVerdict]:
    prompt = f"Guideline id: {guideline.id}\nGuideline: {guideline.text}\n\n{context}"
    return model.generate(tier="fast", system=system_for(language), prompt=prompt, schema=JudgeVerdict)


def system_for(language: str) -> str:
    """The judge's system instruction for copy in `language`."""
    if language == "en":
        return SYSTEM
    name = LANGUAGE_NAMES[language]
    return with_rule(
        f"{SYSTEM_CORE} The copy is in {name}. Judge it as a native {name} reader would: voice, tone, idiom and "
        f"clarity in {name}, not in translation. Quote evidence exactly as written and write every fix in "
        f"{name}. Write in: {language_label(language)}."
    )


def _context(kit: BrandKit, items: Mapping[str, Copy], language: str) -> str:
    parts = []
    if kit.voice or kit.tone:
        parts.append(f"Brand voice: {', '.join(kit.voice) or '-'}; tone: {', '.join(kit.tone) or '-'}")
    if kit.do_examples:
        parts.append("Do, like these examples:\n- " + "\n- ".join(kit.do_examples))
    if kit.dont_examples:
        parts.append("Don't, like these examples:\n- " + "\n- ".join(kit.dont_examples))
    if kit.personas:
        parts.append("Personas:\n- " + "\n- ".join(f"{p.name}: {p.description}" for p in kit.personas))
    parts.append(f"Copy language: {language_label(language)}")
    copy = {key: {path: text for path, text in _paths(c)} for key, c in items.items()}
    parts.append("Copy (item → field → text):\n" + quote_json(copy, source="copy", label="copy under review"))
    return "\n\n".join(parts)


def _paths(copy: Copy) -> list[tuple[str, str]]:
    return [(u.path, u.text) for u in copy.units()]


def _place(violation: JudgeViolation, items: Mapping[str, Copy]) -> tuple[str, str, str] | None:
    """Map the judge's (item, field) to a real field; an unknown field lands on the item's anchor field."""
    key = violation.item if violation.item in items else (next(iter(items)) if len(items) == 1 else None)
    if key is None:
        return None
    copy = items[key]
    path = violation.field.strip()
    name = re.sub(r"\[\d+\]$", "", path)
    if name not in copy.fields:
        return key, copy.anchor_field, path or copy.anchor_field
    return key, name, path


def _slug(text: str) -> str:
    return re.sub(r"[^\w]+", "-", text.lower()).strip("-") or "x"
