"""Text primitives of the deterministic layers: phrase matching, lengths, readability, scripts, numbers.

All pure and Unicode-aware: word boundaries treat combining marks (Devanagari matras, viramas) as
part of a word, so a Hindi term never matches inside a longer Hindi word.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import regex

from shared.writing.specs import SCRIPT_RANGES, Counting, Script

Span = tuple[int, int]

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_SEPARATOR = r"[\s\-\u2010\u2011\u2013]+"
URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
HANDLE_OR_TAG = re.compile(r"[#@][^\s#@]+")


def normalize(text: str) -> str:
    """Straight apostrophes (same length as the input, so offsets stay valid)."""
    return text.translate(_APOSTROPHES)


def squash(text: str) -> str:
    """Lower case, straight apostrophes, hyphens as spaces and single spaces: the form evidence is compared in."""
    return re.sub(_SEPARATOR, " ", normalize(text).lower()).strip()


def is_word_char(ch: str) -> bool:
    """Letters, combining marks, digits and `_`."""
    return ch == "_" or unicodedata.category(ch)[0] in "LMN"


def find_phrase(text: str, phrase: str, *, case_sensitive: bool = False) -> list[Span]:
    """Every occurrence of `phrase` as whole words; words may be separated by spaces or hyphens."""
    words = [w for w in re.split(_SEPARATOR, normalize(phrase).strip()) if w]
    if not words:
        return []
    pattern = _SEPARATOR.join(re.escape(w) for w in words)
    flags = 0 if case_sensitive else re.IGNORECASE
    source = normalize(text)
    spans: list[Span] = []
    for match in re.finditer(pattern, source, flags):
        start, end = match.span()
        if is_word_char(source[start]) and start > 0 and is_word_char(source[start - 1]):
            continue
        if is_word_char(source[end - 1]) and end < len(source) and is_word_char(source[end]):
            continue
        spans.append((start, end))
    return spans


def inside(span: Span, spans: Iterable[Span]) -> bool:
    """Whether `span` lies within one of `spans`."""
    return any(s <= span[0] and span[1] <= e for s, e in spans)


def exempt_spans(text: str, phrases: Iterable[str]) -> list[Span]:
    """Spans of URLs, hashtags, mentions and the given phrases (brand names, disclaimers): never flagged."""
    spans = [m.span() for m in URL.finditer(text)] + [m.span() for m in HANDLE_OR_TAG.finditer(text)]
    for phrase in phrases:
        spans.extend(find_phrase(text, phrase))
    return spans


def blank_out(text: str, spans: Iterable[Span]) -> str:
    """`text` with `spans` replaced by spaces (offsets unchanged)."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


_X_LIGHT = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
"""twitter-text v3's ranges of weight 1 (of 2); U+0000-U+10FF covers Latin and every Indic script."""
_EMOJI = regex.compile(r"\p{Extended_Pictographic}|\p{Regional_Indicator}|\u20e3")


def x_length(text: str) -> int:
    """X's weighted length (twitter-text v3): code points up to U+10FF weigh 1 (so Devanagari, Tamil and the
    other Indic scripts count each letter, vowel sign and virama once), most others 2; an emoji sequence
    (ZWJ family, skin tone, flag) weighs 2 as a whole; any URL 23. Measured after NFC, as X does."""
    text = unicodedata.normalize("NFC", text)
    total, pos = 0, 0
    for match in URL.finditer(text):
        total += _weighted(text[pos:match.start()]) + 23
        pos = match.end()
    return total + _weighted(text[pos:])


def _weighted(text: str) -> int:
    total = 0
    for cluster in regex.findall(r"\X", text):
        if _EMOJI.search(cluster):
            total += 2
            continue
        for ch in cluster:
            cp = ord(ch)
            if 0xFE00 <= cp <= 0xFE0F:
                continue
            total += 1 if any(lo <= cp <= hi for lo, hi in _X_LIGHT) else 2
    return total


def grapheme_length(text: str) -> int:
    """User-perceived characters: extended grapheme clusters (the `regex` module's `\\X`) after NFC."""
    return len(regex.findall(r"\X", unicodedata.normalize("NFC", text)))


def measure(text: str, counting: Counting) -> int:
    """`text`'s length as a platform counts it (`shared.writing.specs.Counting`)."""
    if counting == "x":
        return x_length(text)
    if counting == "graphemes":
        return grapheme_length(text)
    return len(unicodedata.normalize("NFC", text))


_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)*")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)|\n\s*\n|\n(?=\s*[-•*\d])")


def syllables(word: str) -> int:
    """English syllables by vowel groups, with the usual silent-e and -ed/-es corrections."""
    w = re.sub(r"[^a-z]", "", word.lower())
    if len(w) <= 3:
        return 1
    w = re.sub(r"(?:[^laeiouy]es|[^laeiouy]ed|[^laeiouy]e)$", "", w)
    w = re.sub(r"^y", "", w)
    return max(1, len(re.findall(r"[aeiouy]{1,2}", w)))


@dataclass(frozen=True)
class Readability:
    """Counts behind a Flesch–Kincaid grade."""

    words: int
    sentences: int
    syllables: int

    @property
    def grade(self) -> float:
        """Flesch–Kincaid grade level: 0.39·words/sentence + 11.8·syllables/word − 15.59."""
        if not self.words:
            return 0.0
        return round(0.39 * self.words / self.sentences + 11.8 * self.syllables / self.words - 15.59, 1)


def readability(text: str) -> Readability:
    """Word, sentence and syllable counts of English `text`."""
    words = _WORD.findall(blank_out(text, [m.span() for m in URL.finditer(text)]))
    body = text.strip()
    sentences = len([s for s in _SENTENCE_END.split(body) if _WORD.search(s)]) or 1
    return Readability(words=len(words), sentences=sentences, syllables=sum(syllables(w) for w in words))


def script_of(ch: str) -> Script | None:
    """The script of one letter or mark; None for digits, punctuation and scripts the gate does not know."""
    if unicodedata.category(ch)[0] not in "LM":
        return None
    cp = ord(ch)
    for lo, hi, script in SCRIPT_RANGES:
        if lo <= cp <= hi:
            return script
    return None


def script_shares(text: str) -> tuple[int, dict[Script, float]]:
    """(letters counted, share of each script among them)."""
    counts: Counter[Script] = Counter(s for s in map(script_of, text) if s is not None)
    total = sum(counts.values())
    return total, {s: n / total for s, n in counts.items()} if total else {}


_NUMBER = re.compile(
    r"(?P<int>\d{1,3}(?:,\d{2,3})+(?!\d)|\d+)(?:\.(?P<frac>\d+))?"
    r"(?P<suffix>st|nd|rd|th|[kK](?![A-Za-z]))?"
    r"(?:\s?(?P<percent>%|percent\b|per\s?cent\b))?"
    r"(?:\s?(?P<scale>lakhs?|lacs?|crores?|cr|million|mn|billion|bn|thousand)\b)?"
)
_FRACTION = re.compile(r"\d+\s?/\s?\d+")
_LABEL = re.compile(r"\b(?:scene|step|slide|part|act|shot|frame|section)\s+\d+\b|^\s*\d+[.)]\s"
                    r"|\b\d+(?:\.\d+)?\s?-\s?\d+(?:\.\d+)?\s?s\b|\b\d{1,2}:\d{2}\b",
                    re.IGNORECASE | re.MULTILINE)
"""Structure, not claims: scene/step numbers, numbered-list markers, timecodes (0-3s, 0:15)."""
_SCALES = {"k": 1_000, "thousand": 1_000, "lakh": 100_000, "lakhs": 100_000, "lac": 100_000, "lacs": 100_000,
           "crore": 10_000_000, "crores": 10_000_000, "cr": 10_000_000, "million": 1_000_000, "mn": 1_000_000,
           "billion": 1_000_000_000, "bn": 1_000_000_000}


@dataclass(frozen=True)
class Number:
    """A quantity stated in text: its value (scales applied) and whether it is a percentage."""

    text: str
    span: Span
    value: Decimal
    percent: bool

    @property
    def key(self) -> tuple[Decimal, bool]:
        """What must match in the evidence."""
        return self.value, self.percent


def numbers(text: str, *, skip: Sequence[Span] = ()) -> list[Number]:
    """Quantities in `text`, outside `skip` spans, URLs, hashtags and mentions.

    Ordinals (1st, 2nd), thread markers and fractions (1/5, 24/7), digits glued to letters
    before them (B2B, COVID19) and structural labels (SCENE 2, numbered lists, timecodes) are not
    quantities.
    """
    skipped = [*skip, *(m.span() for m in URL.finditer(text)), *(m.span() for m in HANDLE_OR_TAG.finditer(text)),
               *(m.span() for m in _FRACTION.finditer(text)), *(m.span() for m in _LABEL.finditer(text))]
    found: list[Number] = []
    for match in _NUMBER.finditer(text):
        start, end = match.span()
        if start > 0 and (text[start - 1].isalpha() or text[start - 1] in "._" or text[start - 1].isdigit()):
            continue
        if match["suffix"] in {"st", "nd", "rd", "th"} or inside((start, end), skipped):
            continue
        if end < len(text) and text[end] == "." and end + 1 < len(text) and text[end + 1].isdigit():
            continue
        try:
            value = Decimal(_ascii_digits(match["int"]).replace(",", "") + "." + _ascii_digits(match["frac"] or "0"))
        except InvalidOperation:
            continue
        scale = (match["suffix"] or "").lower() or (match["scale"] or "").lower()
        value *= _SCALES.get(scale, 1)
        unit = re.match(r"[^\W\d_]*", text[end:])
        shown = (match.group(0) + (unit.group(0) if unit and not match["percent"] and not match["scale"] else ""))
        found.append(Number(text=shown.strip(), span=(start, end), value=value.normalize(),
                            percent=bool(match["percent"])))
    return found


def _ascii_digits(raw: str) -> str:
    return "".join(str(unicodedata.decimal(ch)) if ch.isdigit() else ch for ch in raw)
