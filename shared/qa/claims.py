"""Layer 2, the claims check: prohibited claims, unsupported superlatives, numbers, dates and times no source
contains.

Evidence is what the caller passes as sources (research findings, knowledge-base chunks; in a campaign
also the brief, the plan and the festival calendar) plus the kit's own substantiated texts (approved
claims, product facts). Dates and times are not claims when a source gives them: "Order by 28 October"
passes when the brief, the plan, the calendar or the kit says 28 October in any language or notation
(`shared.writing.dates`), and is flagged otherwise, as a date rather than a number. A superlative counts
as supported when the evidence contains it with the word it qualifies ("finest tea"); a number when the evidence
states the same quantity in any notation (₹1,499 = INR 1499; 1.2 million = 12 lakh; 34% = 34 percent).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from shared.qa.content import Copy, Unit
from shared.qa.report import Finding, Ledger
from shared.writing.dates import DateKey, Mention, TimeKey, date_supported, mentions
from shared.writing.text import URL, Span, exempt_spans, find_phrase, inside, normalize, numbers, squash

SUPERLATIVES: tuple[str, ...] = (
    "best", "best-selling", "#1", "no. 1", "no.1", "number one", "number 1", "first-ever", "world's first",
    "india's first", "the only", "unbeatable", "unmatched", "unrivalled", "unrivaled", "unparalleled",
    "guaranteed", "guarantee", "most trusted", "most popular", "most loved", "top-rated", "the leading",
    "a leading", "market leader", "market-leading", "industry-leading", "india's leading", "world's leading",
    "cheapest", "lowest price", "lowest prices", "fastest", "finest", "purest", "freshest", "healthiest",
    "safest", "strongest", "largest", "biggest", "greatest", "highest", "lowest", "smartest", "tastiest",
    "world-class", "clinically proven", "scientifically proven",
    "सबसे अच्छा", "सबसे अच्छी", "सबसे अच्छे", "सर्वश्रेष्ठ", "सर्वोत्तम", "नंबर 1", "नंबर वन", "बेस्ट", "सर्वात चांगला",
    "सर्वात चांगली", "सर्वात उत्तम",
)
"""Superlative and absolute claims (English, Hindi, Marathi) that need evidence (ASCI: substantiate claims)."""
IDIOMS: tuple[str, ...] = (
    "best wishes", "best regards", "all the best", "best friend", "best friends", "at best", "at its best",
    "do your best", "best of luck", "best before", "your best",
)
"""Fixed phrases that contain a superlative word but claim nothing."""
_PATTERNS = (
    re.compile(r"\b(?:the|our|its|india's|world's|asia's)\s+most\s+[^\W\d_]+", re.IGNORECASE),
    re.compile(r"\b(?:the|our|its|india's|world's|asia's)\s+([^\W\d_]+est)\b", re.IGNORECASE),
)
_NOT_SUPERLATIVE = frozenset({
    "latest", "interest", "forest", "honest", "harvest", "request", "contest", "guest", "west", "rest", "test",
    "chest", "nest", "quest", "vest", "zest", "manifest", "protest", "suggest", "invest", "digest", "arrest",
    "priest", "modest", "crest", "fest", "earnest", "behest", "conquest", "unrest", "pest", "midwest", "bequest",
    "inquest", "tempest", "everest", "southwest", "northwest",
})

_NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
"""Evidence written in words ("four tins") supports the same number in digits."""

DESCRIPTIONS = {
    "prohibited_claims": "Makes none of the brand's prohibited claims.",
    "superlatives": "Superlatives and absolute claims are supported by a source or an approved claim.",
    "numbers": "Every number appears in a source or a brand-kit fact.",
    "dates": "Every date and time comes from the brief, the plan, the festival calendar or the brand kit.",
}


@dataclass(frozen=True)
class Evidence:
    """What claims may rest on, in comparable form."""

    texts: tuple[str, ...]
    quantities: frozenset[tuple[Decimal, bool]]
    dates: frozenset[DateKey] = frozenset()
    times: frozenset[TimeKey] = frozenset()

    @classmethod
    def of(cls, texts: Iterable[str]) -> Evidence:
        """Evidence from raw texts."""
        kept = tuple(t for t in texts if t and t.strip())
        quantities = {n.key for t in kept for n in numbers(t)}
        for t in kept:
            quantities |= {(Decimal(_NUMBER_WORDS[w]), False) for w in re.findall(r"[a-z]+", t.lower())
                           if w in _NUMBER_WORDS}
        stated = [m for t in kept for m in mentions(t)]
        return cls(texts=tuple(squash(t) for t in kept), quantities=frozenset(quantities),
                   dates=frozenset(m.date for m in stated if m.date), times=frozenset(m.time for m in stated if m.time))

    def gives(self, mention: Mention) -> bool:
        """Whether some source states this date (same day and month; same year when both name one) or time."""
        if mention.date is not None:
            return date_supported(mention.date, self.dates)
        return mention.time in self.times

    def supports(self, claim: str) -> bool:
        """Whether some evidence text contains `claim` (articles and possessive pronouns aside)."""
        core = re.sub(r"^(?:the|a|an|our|its)\s+", "", squash(claim))
        return bool(core) and any(core in text for text in self.texts)


def claims(copy: Copy, ledger: Ledger, sources: Sequence[str]) -> None:
    """Run the claims rules on `copy`, recording tests and findings in `ledger`."""
    evidence = Evidence.of([*sources, *copy.kit.evidence()])
    protected = copy.protected()
    with_phrases = [c for c in copy.kit.prohibited_claims if c.phrases]
    for name in copy.field_names:
        if with_phrases:
            ledger.test("prohibited_claims", name, "claims", DESCRIPTIONS["prohibited_claims"])
        if copy.field_spec(name).prose:
            ledger.test("superlatives", name, "claims", DESCRIPTIONS["superlatives"])
            ledger.test("numbers", name, "claims", DESCRIPTIONS["numbers"])
            ledger.test("dates", name, "claims", DESCRIPTIONS["dates"])
    for unit in copy.units():
        shield = [m.span() for m in URL.finditer(unit.text)]
        for phrase in protected:
            shield += find_phrase(unit.text, phrase)
        flagged: list[Span] = []
        for claim in with_phrases:
            for phrase in claim.phrases:
                for span in find_phrase(unit.text, phrase):
                    if inside(span, shield):
                        continue
                    flagged.append(span)
                    written = unit.text[span[0]:span[1]]
                    ledger.fail(_finding(unit, "prohibited_claims",
                                         f"`{unit.path}` makes the prohibited claim '{claim.description}' "
                                         f"({written!r}); remove the claim.", evidence=written))
        if not unit.spec.prose:
            continue
        exempt = exempt_spans(unit.text, protected)
        _superlatives(unit, ledger, evidence, exempt + flagged)
        stated = _dates(unit, ledger, evidence, exempt)
        _numbers(unit, ledger, evidence, exempt + stated)


def _finding(unit: Unit, guideline: str, message: str, **extra: str | None) -> Finding:
    return Finding(field=unit.field, path=unit.path, guideline=guideline, layer="claims", message=message, **extra)


def superlative_spans(text: str) -> list[Span]:
    """Spans of superlatives and absolute claims in `text` (idioms such as 'best wishes' excluded)."""
    idioms = [span for idiom in IDIOMS for span in find_phrase(text, idiom)]
    found: list[Span] = []
    for phrase in SUPERLATIVES:
        found += find_phrase(text, phrase)
    source = normalize(text)
    for pattern in _PATTERNS:
        for match in pattern.finditer(source):
            word = match.group(match.lastindex or 0).lower()
            if match.lastindex and word in _NOT_SUPERLATIVE:
                continue
            found.append(match.span())
    found = [s for s in found if not inside(s, idioms)]
    return _outermost(found)


def _outermost(spans: list[Span]) -> list[Span]:
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (s[0], -s[1])):
        if kept and span[0] < kept[-1][1]:
            if span[1] > kept[-1][1]:
                kept[-1] = (kept[-1][0], span[1])
            continue
        kept.append(span)
    return kept


def _superlatives(unit: Unit, ledger: Ledger, evidence: Evidence, shield: list[Span]) -> None:
    for span in superlative_spans(unit.text):
        if inside(span, shield):
            continue
        claim = _with_next_word(unit.text, span)
        if evidence.supports(claim):
            continue
        written = unit.text[span[0]:span[1]]
        ledger.fail(_finding(unit, "superlatives", f"`{unit.path}` claims {claim!r}, which no source or approved "
                                                   "claim supports; cite a source that says so, add it to the "
                                                   "kit's approved claims, or drop the superlative.",
                             evidence=written))


def _with_next_word(text: str, span: Span) -> str:
    match = re.match(r"[ \t\-]+([^\s.,!?;:()\"']+)", text[span[1]:])
    end = span[1] + match.end() if match else span[1]
    return text[span[0]:end]


def _numbers(unit: Unit, ledger: Ledger, evidence: Evidence, shield: list[Span]) -> None:
    for number in numbers(unit.text, skip=shield):
        if number.key in evidence.quantities:
            continue
        ledger.fail(_finding(unit, "numbers", f"`{unit.path}` states {number.text!r}, which no source or brand-kit "
                                              "fact contains; cite a source that has it, add it to a product's "
                                              "facts, or remove it.", evidence=number.text))


def _dates(unit: Unit, ledger: Ledger, evidence: Evidence, shield: list[Span]) -> list[Span]:
    """Check every date and time in `unit`; return their spans (the numbers rule leaves them alone)."""
    spans: list[Span] = []
    flagged: set[Span] = set()
    for mention in mentions(unit.text):
        spans.append(mention.span)
        if inside(mention.span, shield) or mention.span in flagged or evidence.gives(mention):
            continue
        flagged.add(mention.span)
        what = "date" if mention.date is not None else "time"
        ledger.fail(_finding(unit, "dates", f"`{unit.path}` states the {what} {mention.text!r}, which neither the "
                                            "brief, the plan, the festival calendar nor the brand kit gives; use "
                                            f"a {what} one of them states, add it to the brief, or remove it.",
                             evidence=mention.text))
    return spans
