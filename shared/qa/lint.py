"""Layer 1, the deterministic lint: terms, disclaimers, lengths, reading level, script and language.

Every rule is data-driven from the brand kit and the content spec, runs without a model, and says
what to change. Findings here block publication whatever the overall score.
"""

from __future__ import annotations

import re

from shared.qa import langid
from shared.qa.content import Copy, Unit
from shared.qa.report import Finding, Ledger
from shared.writing.specs import LANGUAGE_NAMES, SCRIPT_OF
from shared.writing.text import (
    URL,
    blank_out,
    exempt_spans,
    find_phrase,
    inside,
    measure,
    readability,
    script_shares,
    squash,
)

SCRIPT_MIN_SHARE = 0.6
"""At least this share of a text's letters must be in the language's script (names and disclaimers excluded)."""
LANGUAGE_MIN_CONFIDENCE = 0.5
"""A text fails the language rule only when the detector is at least this sure of another language."""
LANGUAGE_MIN_LETTERS = 15
READING_MIN_WORDS = 20
_HASHTAG = re.compile(r"^#[^\s#]+$")
COUNTING_NAMES = {
    "chars": "characters",
    "graphemes": "characters as the inbox shows them (grapheme clusters)",
    "x": "weighted characters as X counts them (twitter-text v3: Latin and Indic letters and signs 1, "
         "emoji 2, URLs 23)",
}

DESCRIPTIONS = {
    "completeness": "Every required field has text.",
    "length": "Within the platform's length limits.",
    "hashtags": "Hashtags are single #words.",
    "banned_terms": "Uses none of the brand's banned terms.",
    "approved_terms": "Writes approved terms exactly as approved.",
    "required_terms": "Contains the brand's required terms.",
    "required_disclaimers": "Carries the required disclaimers verbatim.",
    "kit_language": "Is in one of the brand's languages.",
    "script": "Is written in the language's script.",
    "language": "Is in the requested language.",
    "reading_level": "Reads at or below the brand's reading level.",
}


def lint(copy: Copy, ledger: Ledger) -> None:
    """Run every deterministic rule on `copy`, recording tests and findings in `ledger`."""
    _completeness(copy, ledger)
    _lengths(copy, ledger)
    _terms(copy, ledger)
    _content_level(copy, ledger)
    _script_and_language(copy, ledger)
    _reading_level(copy, ledger)


def _finding(unit_or_field: Unit | str, guideline: str, message: str, **extra: str | None) -> Finding:
    field, path = ((unit_or_field.field, unit_or_field.path) if isinstance(unit_or_field, Unit)
                   else (unit_or_field, unit_or_field))
    return Finding(field=field, path=path, guideline=guideline, layer="lint", message=message, **extra)


def _test(ledger: Ledger, guideline: str, field: str) -> None:
    ledger.test(guideline, field, "lint", DESCRIPTIONS[guideline])


def _completeness(copy: Copy, ledger: Ledger) -> None:
    for spec in copy.spec.fields:
        value = copy.fields.get(spec.name)
        if not spec.required or value is None:
            continue
        _test(ledger, "completeness", spec.name)
        blank = not value.strip() if isinstance(value, str) else not any(v.strip() for v in value)
        if blank:
            ledger.fail(_finding(spec.name, "completeness", f"`{spec.name}` is empty; write the {spec.name}."))


def _lengths(copy: Copy, ledger: Ledger) -> None:
    for name in copy.field_names:
        spec = copy.field_spec(name)
        value = copy.fields[name]
        if spec.max_chars is None and spec.max_items is None:
            continue
        _test(ledger, "length", name)
        if spec.max_items is not None and isinstance(value, list) and len(value) > spec.max_items:
            ledger.fail(_finding(name, "length", f"`{name}` has {len(value)} items; {copy.content_type} allows "
                                                 f"at most {spec.max_items}: drop {len(value) - spec.max_items}."))
        if spec.hashtags:
            _test(ledger, "hashtags", name)
    for unit in copy.units():
        spec = unit.spec
        if spec.hashtags and not _HASHTAG.match(unit.text.strip()):
            ledger.fail(_finding(unit, "hashtags", f"{unit.text!r} is not a hashtag; write it as one #word "
                                                   "without spaces.", evidence=unit.text,
                                 suggestion="#" + re.sub(r"[\s#]+", "", unit.text)))
        if spec.max_chars is None:
            continue
        size = measure(unit.text, spec.counting)
        if size > spec.max_chars:
            unit_name = COUNTING_NAMES[spec.counting]
            ledger.fail(_finding(unit, "length", f"`{unit.path}` is {size} {unit_name}; the {copy.content_type} "
                                                 f"limit is {spec.max_chars}: cut {size - spec.max_chars}.",
                                 evidence=unit.text[spec.max_chars:][:80] or None))


def _terms(copy: Copy, ledger: Ledger) -> None:
    kit = copy.kit
    banned_terms = kit.banned_terms_for(copy.language)
    approved_terms = kit.approved_terms_for(copy.language)
    for name in copy.field_names:
        if banned_terms:
            _test(ledger, "banned_terms", name)
        if approved_terms:
            _test(ledger, "approved_terms", name)
    if not (banned_terms or approved_terms):
        return
    protected = copy.protected()
    for unit in copy.units():
        urls = [m.span() for m in URL.finditer(unit.text)]
        shield = urls + [span for phrase in protected for span in find_phrase(unit.text, phrase)]
        for banned in banned_terms:
            for span in find_phrase(unit.text, banned.term, case_sensitive=banned.case_sensitive):
                if inside(span, shield):
                    continue
                written = unit.text[span[0]:span[1]]
                fix = (f"write {banned.substitution!r} instead" if banned.substitution
                       else "remove it or rephrase")
                why = f" ({banned.reason})" if banned.reason else ""
                ledger.fail(_finding(unit, "banned_terms", f"`{unit.path}` uses the banned term {written!r}{why}; "
                                                           f"{fix}.", evidence=written,
                                     suggestion=banned.substitution))
        for approved in approved_terms:
            for mistake in approved.mistakes:
                for span in find_phrase(unit.text, mistake):
                    if inside(span, urls):
                        continue
                    written = unit.text[span[0]:span[1]]
                    ledger.fail(_finding(unit, "approved_terms", f"`{unit.path}` writes {written!r}; the approved "
                                                                 f"term is {approved.term!r}.", evidence=written,
                                         suggestion=approved.term))
            if approved.case_sensitive:
                for span in find_phrase(unit.text, approved.term):
                    written = unit.text[span[0]:span[1]]
                    if not inside(span, urls) and not _same_form(written, approved.term):
                        ledger.fail(_finding(unit, "approved_terms", f"`{unit.path}` writes {written!r}; write it "
                                                                     f"exactly as {approved.term!r}.",
                                             evidence=written, suggestion=approved.term))


def _same_form(written: str, term: str) -> bool:
    """Same letters and case; a hyphen and a space are interchangeable."""
    return re.sub(r"[\s\-]+", " ", written) == re.sub(r"[\s\-]+", " ", term)


def _content_level(copy: Copy, ledger: Ledger) -> None:
    kit = copy.kit
    anchor = copy.anchor_field
    whole = copy.whole()
    squashed = squash(whole)
    required = kit.required_terms_for(copy.content_type, copy.language)
    if required:
        _test(ledger, "required_terms", anchor)
    for term in required:
        if not find_phrase(whole, term):
            ledger.fail(_finding(anchor, "required_terms", f"The {copy.content_type} copy never mentions "
                                                           f"{term!r}; work it into `{anchor}`.", suggestion=term))
    disclaimers = kit.disclaimers_for(copy.content_type)
    if disclaimers:
        _test(ledger, "required_disclaimers", anchor)
    for disclaimer in disclaimers:
        if squash(disclaimer) not in squashed:
            ledger.fail(_finding(anchor, "required_disclaimers", f"The {copy.content_type} copy lacks the required "
                                                                 f"disclaimer {disclaimer!r}; add it verbatim to "
                                                                 f"`{anchor}`.", suggestion=disclaimer))
    if kit.languages:
        _test(ledger, "kit_language", anchor)
        if copy.language not in kit.languages:
            ledger.fail(_finding(anchor, "kit_language", f"{copy.language!r} is not one of the brand's languages "
                                                         f"{kit.languages}; write in one of them or add "
                                                         f"{copy.language!r} to the kit."))


def _script_and_language(copy: Copy, ledger: Ledger) -> None:
    """Script by Unicode ranges (names, approved terms and disclaimers aside), then the language within it.

    With the kit's `code_mixing`, Indic copy may mix Latin-script English or romanised words with its own
    script (Hinglish); any other script still fails, and a text identified as another Indic language too.
    """
    expected = SCRIPT_OF[copy.language]
    mixing = copy.kit.code_mixing and expected != "Latin"
    name = LANGUAGE_NAMES[copy.language]
    protected = copy.protected()
    for unit in copy.units(prose_only=True):
        text = blank_out(unit.text, exempt_spans(unit.text, protected))
        letters, shares = script_shares(text)
        if letters < 3:
            continue
        _test(ledger, "script", unit.field)
        share = shares.get(expected, 0.0) + (shares.get("Latin", 0.0) if mixing else 0.0)
        if share < SCRIPT_MIN_SHARE:
            main = max(shares, key=lambda s: shares[s])
            allowed = f"{expected} (English words in Latin script allowed)" if mixing else expected
            ledger.fail(_finding(unit, "script", f"`{unit.path}` is mostly in {main} script ({shares[main]:.0%} "
                                                 f"of letters); {name} ({copy.language!r}) copy is written in "
                                                 f"{allowed}: rewrite it in {name}.", evidence=unit.text[:80]))
            continue
        if letters < LANGUAGE_MIN_LETTERS or len(text.split()) < 3:
            continue
        main = max(shares, key=lambda s: shares[s])
        if mixing and main == "Latin":
            continue
        _test(ledger, "language", unit.field)
        found = langid.identify(text, main)
        if found is None or found.lang == copy.language or found.score < LANGUAGE_MIN_CONFIDENCE:
            continue
        told = {"script": "its script", "letters": f"the letters {', '.join(found.evidence)}",
                "stop_words": f"words such as {', '.join(found.evidence)}",
                "fasttext": f"fastText, {found.score:.0%} sure"}[found.method]
        other = LANGUAGE_NAMES.get(found.lang, found.lang)
        ledger.fail(_finding(unit, "language", f"`{unit.path}` reads as {other} ({found.lang!r}, by {told}), not "
                                               f"{name} ({copy.language!r}); rewrite it in {name}.",
                             evidence=unit.text[:80]))


def _reading_level(copy: Copy, ledger: Ledger) -> None:
    target = copy.kit.reading_level
    if target is None or copy.language != "en":
        return
    protected = copy.protected()
    for name in copy.field_names:
        if not copy.field_spec(name).prose:
            continue
        text = copy.text_of(name)
        stats = readability(blank_out(text, exempt_spans(text, protected)))
        if stats.words < READING_MIN_WORDS:
            continue
        _test(ledger, "reading_level", name)
        if stats.grade > target.max_grade:
            ledger.fail(_finding(name, "reading_level", f"`{name}` reads at Flesch–Kincaid grade {stats.grade} "
                                                        f"({stats.words} words in {stats.sentences} sentences); "
                                                        f"the brand's target is grade {target.max_grade:g} or "
                                                        "lower: use shorter sentences and plainer words."))
