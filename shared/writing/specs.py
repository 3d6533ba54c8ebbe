"""What the QA gate knows about content types and languages: fields, platform limits, scripts.

Limits are the platforms' own display or hard limits, stricter than the writer's schemas in
`shared.channels` (those only bound what a model may return): a too-long field is a lint
finding with a fix, not a rejected request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

ContentType = Literal["email", "linkedin_post", "x_thread", "instagram_caption", "ad", "landing_page", "video_script"]
Language = Literal["en", "hi", "mr", "ne", "bn", "as", "pa", "gu", "or", "ta", "te", "kn", "ml", "ur"]
Script = Literal["Latin", "Devanagari", "Bengali", "Gurmukhi", "Gujarati", "Odia", "Tamil", "Telugu", "Kannada",
                 "Malayalam", "Arabic"]
CONTENT_TYPES: tuple[str, ...] = get_args(ContentType)
LANGUAGES: tuple[str, ...] = get_args(Language)

SCRIPT_OF: dict[str, Script] = {
    "en": "Latin", "hi": "Devanagari", "mr": "Devanagari", "ne": "Devanagari", "bn": "Bengali", "as": "Bengali",
    "pa": "Gurmukhi", "gu": "Gujarati", "or": "Odia", "ta": "Tamil", "te": "Telugu", "kn": "Kannada",
    "ml": "Malayalam", "ur": "Arabic",
}
"""The script each supported language is written in (romanised Indic copy only where the kit allows code-mixing)."""

LANGUAGE_NAMES: dict[str, str] = {
    "en": "English", "hi": "Hindi", "mr": "Marathi", "ne": "Nepali", "bn": "Bengali", "as": "Assamese",
    "pa": "Punjabi", "gu": "Gujarati", "or": "Odia", "ta": "Tamil", "te": "Telugu", "kn": "Kannada",
    "ml": "Malayalam", "ur": "Urdu",
}
"""English names, as prompts state the language ("Write in: Tamil (ta), Tamil script")."""
SCRIPT_NAMES: dict[str, str] = {"Arabic": "Urdu Nastaliq (Arabic)", "Latin": "Latin"}
"""How a prompt names a script when its plain name would mislead (Urdu is written in Nastaliq)."""


def language_label(language: str) -> str:
    """`Tamil (ta), Tamil script`: how every prompt names the language to write in."""
    script = SCRIPT_OF[language]
    return f"{LANGUAGE_NAMES[language]} ({language}), {SCRIPT_NAMES.get(script, script)} script"

SCRIPT_RANGES: tuple[tuple[int, int, Script], ...] = (
    (0x0041, 0x024F, "Latin"), (0x1E00, 0x1EFF, "Latin"),
    (0x0600, 0x06FF, "Arabic"), (0x0750, 0x077F, "Arabic"),
    (0x0900, 0x097F, "Devanagari"), (0xA8E0, 0xA8FF, "Devanagari"),
    (0x0980, 0x09FF, "Bengali"), (0x0A00, 0x0A7F, "Gurmukhi"), (0x0A80, 0x0AFF, "Gujarati"),
    (0x0B00, 0x0B7F, "Odia"), (0x0B80, 0x0BFF, "Tamil"), (0x0C00, 0x0C7F, "Telugu"),
    (0x0C80, 0x0CFF, "Kannada"), (0x0D00, 0x0D7F, "Malayalam"),
)


Counting = Literal["chars", "x", "graphemes"]
"""How a platform counts a limit:

- `chars`: Unicode code points after NFC (what the platforms' APIs and Google Ads' editor count as characters;
  an Indic letter with a vowel sign is two). The strict reading where a platform does not say more.
- `x`: X's weighted length, twitter-text v3 (`config/v3.json`): code points up to U+10FF (Latin and every Indic
  script, so a Devanagari letter and each vowel sign or virama weigh 1) and a few punctuation ranges weigh 1,
  every other code point 2, an emoji sequence 2 as a whole, any URL 23.
- `graphemes`: user-perceived characters (extended grapheme clusters): what an inbox shows before it truncates
  a subject line or preheader, so `नमस्ते` is three, not six.
"""


@dataclass(frozen=True)
class FieldSpec:
    """One field of a content type and the limits the lint enforces on it."""

    name: str
    kind: Literal["text", "list"] = "text"
    max_chars: int | None = None
    """Per text, or per item of a list."""
    counting: Counting = "chars"
    """How the platform counts the limit (see `Counting`)."""
    max_items: int | None = None
    required: bool = True
    prose: bool = True
    """Language, script and reading-level rules apply (not to hashtags)."""
    hashtags: bool = False


@dataclass(frozen=True)
class ContentSpec:
    """A content type: its fields, and the field that carries disclaimers and required terms."""

    fields: tuple[FieldSpec, ...]
    primary: str

    def field(self, name: str) -> FieldSpec | None:
        """The spec of field `name`, if the content type has it."""
        return next((f for f in self.fields if f.name == name), None)

    @property
    def names(self) -> list[str]:
        """Field names, in order."""
        return [f.name for f in self.fields]


CONTENT_SPECS: dict[str, ContentSpec] = {
    # Subject truncates past ~60 characters in most clients; preheaders past ~80 (Adobe GenStudio flags > 80).
    "email": ContentSpec(fields=(FieldSpec("subject", max_chars=60, counting="graphemes"),
                                 FieldSpec("preheader", max_chars=80, counting="graphemes"),
                                 FieldSpec("body", max_chars=10_000), FieldSpec("cta", max_chars=30)),
                         primary="body"),
    "linkedin_post": ContentSpec(fields=(FieldSpec("text", max_chars=3000),), primary="text"),
    "x_thread": ContentSpec(fields=(FieldSpec("posts", kind="list", max_chars=280, counting="x", max_items=25),),
                            primary="posts"),
    "instagram_caption": ContentSpec(
        fields=(FieldSpec("caption", max_chars=2200),
                FieldSpec("hashtags", kind="list", max_chars=100, max_items=30, required=False, prose=False,
                          hashtags=True)),
        primary="caption"),
    # Google responsive search ad limits (30 / 90), which also fit Meta's visible headline and text.
    "ad": ContentSpec(fields=(FieldSpec("headline", max_chars=30), FieldSpec("description", max_chars=90)),
                      primary="description"),
    "landing_page": ContentSpec(fields=(FieldSpec("headline", max_chars=70),
                                        FieldSpec("subheadline", max_chars=160, required=False),
                                        FieldSpec("body", max_chars=20_000), FieldSpec("cta", max_chars=30)),
                                primary="body"),
    "video_script": ContentSpec(fields=(FieldSpec("hook", max_chars=150), FieldSpec("script", max_chars=10_000),
                                        FieldSpec("cta", max_chars=60)),
                                primary="script"),
}
