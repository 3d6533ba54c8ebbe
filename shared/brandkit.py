"""A workspace's brand kit: the validated document the QA gate checks copy against.

Stored as JSON in `brand_kits.kit` (its canonical form is `BrandKit.model_dump(mode="json")`) and
edited over `/api/v1/brand-kit`. Validation is strict: unknown keys, duplicates and contradictions
(a term both banned and approved, a disclaimer that contains a banned term) are rejected with a
message naming the value and the fix. Two shorthands of earlier kits are still accepted on input:
`banned_terms` as a `{term: substitution}` mapping and a disclaimer as one string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, ValidationInfo, field_validator

from shared import ports
from shared.errors import PermanentStepError
from shared.writing.specs import ContentType, Language
from shared.writing.text import find_phrase

Term = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
Descriptor = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
Sentence = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BannedTerm(_Strict):
    """A word or phrase the brand never uses, and what to write instead."""

    term: Term
    substitution: Term | None = None
    """None: remove the term or rephrase; there is no single replacement."""
    case_sensitive: bool = False
    reason: Sentence | None = None
    language: Language | None = None
    """The language of copy this applies to; None: copy in every language."""


class ApprovedTerm(_Strict):
    """A term the brand uses in one exact form (a product or brand name, a coined phrase)."""

    term: Term
    case_sensitive: bool = True
    """The copy must use exactly this capitalisation."""
    mistakes: list[Term] = Field(default_factory=list, max_length=20)
    """Wrong forms seen in copy (misspellings, old names); each is replaced by `term`."""
    language: Language | None = None
    """The language of copy this applies to; None: copy in every language."""


class RequiredTerm(_Strict):
    """A term every piece of copy of the given content types must contain."""

    term: Term
    content_types: list[ContentType] = Field(default_factory=list, max_length=7)
    """Empty: every content type."""
    language: Language | None = None
    """The language of copy this applies to; None: copy in every language."""


class ProhibitedClaim(_Strict):
    """A claim the brand may not make (legal, regulatory, ASCI); the judge also catches paraphrases."""

    id: Slug
    description: Sentence
    """The claim in plain words, e.g. 'tea cures or prevents illness'."""
    phrases: list[Term] = Field(default_factory=list, max_length=30)
    """Exact trigger phrases the deterministic layer flags, e.g. 'cures', 'boosts immunity'."""


class Persona(_Strict):
    """An ideal customer profile the copy speaks to."""

    name: Term
    description: LongText
    goals: list[Sentence] = Field(default_factory=list, max_length=10)
    pains: list[Sentence] = Field(default_factory=list, max_length=10)


class Product(_Strict):
    """A product, with the facts (prices, sizes, numbers) copy may state about it."""

    name: Term
    description: LongText = ""
    facts: list[Sentence] = Field(default_factory=list, max_length=30)


class ReadingLevel(_Strict):
    """The hardest English copy may read, as a Flesch–Kincaid grade."""

    max_grade: float = Field(ge=1, le=20)


_WHITESPACE = "\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"


def _stripped(longest: int) -> str:
    """The pattern of a string that, stripped of Unicode White_Space, is 1 to `longest` characters, no NUL
    (as `shared.api.models.stripped_pattern` states every stripped field)."""
    keep = f"[^{_WHITESPACE}\\x00]"
    return f"^[{_WHITESPACE}]*(?:{keep}(?:[^\\x00]{{0,{longest - 2}}}{keep})?)[{_WHITESPACE}]*$"


_SENTENCE = {"type": "string", "minLength": 1, "pattern": _stripped(500)}
_TERM_MAPPING = {"type": "object", "maxProperties": 200,
                 "propertyNames": {"type": "string", "minLength": 1, "pattern": _stripped(80)},
                 "additionalProperties": {"anyOf": [{"type": "string", "pattern": "^$|" + _stripped(80)},
                                                    {"type": "null"}]}}


def _or_shorthand(schema: dict[str, Any], shorthand: dict[str, Any], key: str | None = None) -> None:
    """State in the JSON Schema that `schema` (or its `key` subschema) may also be sent in its shorthand form."""
    if key is not None:
        schema[key] = {"anyOf": [schema[key], shorthand]}
        return
    full = dict(schema)
    schema.clear()
    schema["anyOf"] = [full, shorthand]


class BrandKit(_Strict):
    """Everything the QA gate holds copy to, and the writer's brand context."""

    voice: list[Descriptor] = Field(default_factory=list, max_length=12)
    """Voice descriptors (who the brand is), e.g. 'warm', 'plain-spoken'; each is judged on its own."""
    tone: list[Descriptor] = Field(default_factory=list, max_length=12)
    """Tone descriptors (how it sounds now), e.g. 'festive'."""
    do_examples: list[Sentence] = Field(default_factory=list, max_length=20)
    dont_examples: list[Sentence] = Field(default_factory=list, max_length=20)
    approved_terms: list[ApprovedTerm] = Field(default_factory=list, max_length=200)
    banned_terms: list[BannedTerm] = Field(default_factory=list, max_length=200,
                                           json_schema_extra=lambda schema: _or_shorthand(schema, _TERM_MAPPING))
    required_terms: list[RequiredTerm] = Field(default_factory=list, max_length=20)
    prohibited_claims: list[ProhibitedClaim] = Field(default_factory=list, max_length=30)
    approved_claims: list[Sentence] = Field(default_factory=list, max_length=50)
    """Substantiated claims copy may make verbatim: superlatives and numbers in them count as supported."""
    required_disclaimers: dict[ContentType, list[Sentence]] = Field(
        default_factory=dict, json_schema_extra=lambda schema: _or_shorthand(schema, _SENTENCE, "additionalProperties"))
    """Content type → disclaimers that must appear verbatim in its copy."""
    personas: list[Persona] = Field(default_factory=list, max_length=10)
    products: list[Product] = Field(default_factory=list, max_length=50)
    reading_level: ReadingLevel | None = None
    languages: list[Language] = Field(default_factory=list, max_length=14)
    """Languages the brand publishes in; empty: any supported language."""
    code_mixing: bool = False
    """Indic-language copy may mix in English words and romanised text (Hinglish, Tanglish). Off: every draft is
    written in its language's script, brand names and approved terms aside."""
    guidelines: list[Sentence] = Field(default_factory=list, max_length=20)
    """Further rules in plain words, each judged on its own by the model judge."""

    @field_validator("voice", "tone", "do_examples", "dont_examples", "approved_claims", "guidelines", "languages")
    @classmethod
    def _unique(cls, values: list[str], info: ValidationInfo) -> list[str]:
        _no_duplicates(list(values), info.field_name or "list")
        return values

    @field_validator("approved_terms")
    @classmethod
    def _approved(cls, values: list[ApprovedTerm]) -> list[ApprovedTerm]:
        _no_duplicates([t.term for t in values], "approved_terms")
        for t in values:
            for mistake in t.mistakes:
                if mistake == t.term:
                    raise ValueError(f"{t.term!r} lists itself as a mistake; remove it from its `mistakes`")
        return values

    @field_validator("banned_terms", mode="before")
    @classmethod
    def _mapping_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict) and all(sub is None or isinstance(sub, str) for sub in value.values()):
            return [{"term": term, "substitution": sub or None} for term, sub in value.items()]
        return value

    @field_validator("banned_terms")
    @classmethod
    def _banned(cls, values: list[BannedTerm], info: ValidationInfo) -> list[BannedTerm]:
        _no_duplicates([t.term for t in values], "banned_terms")
        banned = {t.term.lower() for t in values}
        approved = {t.term.lower() for t in info.data.get("approved_terms", [])}
        for t in values:
            if t.term.lower() in approved:
                raise ValueError(f"{t.term!r} is both banned and approved; keep it in one of the two lists")
            if t.substitution and t.substitution.lower() in banned:
                raise ValueError(f"the substitution {t.substitution!r} for {t.term!r} is itself banned; "
                                 "choose a substitution that is allowed")
        return values

    @field_validator("required_terms")
    @classmethod
    def _required(cls, values: list[RequiredTerm], info: ValidationInfo) -> list[RequiredTerm]:
        _no_duplicates([t.term for t in values], "required_terms")
        for t in values:
            _not_banned(t.term, info, f"required term {t.term!r}")
        return values

    @field_validator("prohibited_claims")
    @classmethod
    def _claims(cls, values: list[ProhibitedClaim]) -> list[ProhibitedClaim]:
        _no_duplicates([c.id for c in values], "prohibited_claims ids")
        return values

    @field_validator("required_disclaimers", mode="before")
    @classmethod
    def _string_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("required_disclaimers")
    @classmethod
    def _disclaimers(cls, value: dict[str, list[str]], info: ValidationInfo) -> dict[str, list[str]]:
        for content_type, texts in value.items():
            if len(texts) > 5:
                raise ValueError(f"{content_type!r} has {len(texts)} disclaimers; at most 5 per content type")
            _no_duplicates(list(texts), f"required_disclaimers.{content_type}")
            for text in texts:
                _not_banned(text, info, f"the {content_type} disclaimer {text!r}")
        return value

    @field_validator("products")
    @classmethod
    def _products(cls, values: list[Product]) -> list[Product]:
        _no_duplicates([p.name for p in values], "products")
        return values

    @classmethod
    def from_stored(cls, data: dict[str, Any] | None) -> BrandKit:
        """The kit stored for a workspace (an empty kit when none was saved)."""
        return cls.model_validate(data or {})

    def to_port(self) -> KitView:
        """The `shared.ports.BrandKit` view the campaign nodes read, carrying this full kit as `spec`."""
        return KitView(
            voice=[*self.voice, *self.tone],
            banned_terms={t.term: t.substitution or "" for t in self.banned_terms},
            required_disclaimers={k: " ".join(v) for k, v in self.required_disclaimers.items() if v},
            spec=self,
        )

    def disclaimers_for(self, content_type: str) -> list[str]:
        """Disclaimers copy of `content_type` must carry."""
        return list(self.required_disclaimers.get(content_type, []))  # type: ignore[call-overload]

    def required_terms_for(self, content_type: str, language: str | None = None) -> list[str]:
        """Terms copy of `content_type` (in `language`; None: terms of every language) must contain."""
        return [t.term for t in self.required_terms
                if (not t.content_types or content_type in t.content_types)
                and (t.language is None or language is None or t.language == language)]

    def banned_terms_for(self, language: str) -> list[BannedTerm]:
        """Banned terms that apply to copy in `language`."""
        return [t for t in self.banned_terms if t.language is None or t.language == language]

    def approved_terms_for(self, language: str) -> list[ApprovedTerm]:
        """Approved terms that apply to copy in `language`."""
        return [t for t in self.approved_terms if t.language is None or t.language == language]

    def protected_phrases(self, content_type: str, language: str | None = None) -> list[str]:
        """Names and verbatim texts the lint never flags inside: approved terms, products, disclaimers."""
        approved = self.approved_terms if language is None else self.approved_terms_for(language)
        return [*(t.term for t in approved), *(p.name for p in self.products),
                *self.disclaimers_for(content_type), *self.required_terms_for(content_type, language)]

    def evidence(self) -> list[str]:
        """Kit texts that substantiate claims: approved claims, product names, descriptions and facts."""
        out = list(self.approved_claims)
        for p in self.products:
            out += [p.name, p.description, *p.facts]
        return [t for t in out if t]


@dataclass(frozen=True)
class KitView(ports.BrandKit):
    """`shared.ports.BrandKit` as the workspace store returns it, with the full validated kit attached."""

    spec: BrandKit | None = None


def as_brand_kit(kit: BrandKit | ports.BrandKit | dict[str, Any] | None) -> BrandKit:
    """The full kit from whichever form a caller has (a port view without `spec` keeps what it carries)."""
    if isinstance(kit, BrandKit):
        return kit
    if isinstance(kit, KitView) and kit.spec is not None:
        return kit.spec
    if isinstance(kit, ports.BrandKit):
        return BrandKit.model_validate({"voice": kit.voice, "banned_terms": kit.banned_terms,
                                        "required_disclaimers": kit.required_disclaimers})
    return BrandKit.from_stored(kit)


def stored_kit_view(data: dict[str, Any] | None) -> KitView:
    """The port view of a stored kit; a stored kit that no longer validates fails the step permanently."""
    try:
        return BrandKit.from_stored(data).to_port()
    except ValidationError as exc:
        raise PermanentStepError(f"The stored brand kit is invalid ({exc.error_count()} problems: "
                                 f"{exc.errors(include_url=False)[:3]}); save a valid one with PUT "
                                 "/api/v1/brand-kit.") from exc


def _no_duplicates(values: list[str], name: str) -> None:
    """Case-insensitive: 'Warm' repeats 'warm'."""
    seen: set[str] = set()
    for v in values:
        if v.lower() in seen:
            raise ValueError(f"{v!r} appears twice in {name} (ignoring case); list it once")
        seen.add(v.lower())


def _not_banned(text: str, info: ValidationInfo, what: str) -> None:
    for banned in info.data.get("banned_terms", []):
        if find_phrase(text, banned.term, case_sensitive=banned.case_sensitive):
            raise ValueError(f"{what} contains the banned term {banned.term!r}; reword it or unban the term")

