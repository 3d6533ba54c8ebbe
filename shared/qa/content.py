"""One piece of copy as the layers see it: its fields, split into checkable texts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.brandkit import BrandKit
from shared.writing.specs import CONTENT_SPECS, ContentSpec, FieldSpec


@dataclass(frozen=True)
class Unit:
    """One text checked on its own: a text field, or one item of a list field."""

    field: str
    path: str
    text: str
    spec: FieldSpec


@dataclass(frozen=True)
class Copy:
    """Copy of one content type in one language, checked against one kit."""

    content_type: str
    fields: Mapping[str, str | list[str]]
    language: str
    kit: BrandKit

    @property
    def spec(self) -> ContentSpec:
        """The content type's fields and limits."""
        return CONTENT_SPECS[self.content_type]

    @property
    def field_names(self) -> list[str]:
        """Fields present, in the content type's order."""
        return [f.name for f in self.spec.fields if f.name in self.fields]

    def field_spec(self, name: str) -> FieldSpec:
        """The spec of a present field."""
        spec = self.spec.field(name)
        assert spec is not None, name
        return spec

    def units(self, *, prose_only: bool = False) -> list[Unit]:
        """Every checkable text, field by field (list items one by one)."""
        out: list[Unit] = []
        for name in self.field_names:
            spec = self.field_spec(name)
            if prose_only and not spec.prose:
                continue
            value = self.fields[name]
            if isinstance(value, str):
                out.append(Unit(name, name, value, spec))
            else:
                out.extend(Unit(name, f"{name}[{i}]", item, spec) for i, item in enumerate(value))
        return out

    def text_of(self, name: str) -> str:
        """A field's whole text (list items on separate lines)."""
        value = self.fields[name]
        return value if isinstance(value, str) else "\n".join(value)

    def whole(self) -> str:
        """All fields' text, for content-level rules (required terms and disclaimers)."""
        return "\n".join(self.text_of(n) for n in self.field_names)

    @property
    def anchor_field(self) -> str:
        """Where content-level findings go: the primary field, else the first field present."""
        return self.spec.primary if self.spec.primary in self.fields else self.field_names[0]

    def protected(self) -> list[str]:
        """Phrases no rule flags inside (approved terms, product names, disclaimers, required terms)."""
        return self.kit.protected_phrases(self.content_type, self.language)


def coerce_fields(content_type: str, raw: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """Keep the content type's text fields from a draft (drops non-text values a schema may carry)."""
    spec = CONTENT_SPECS[content_type]
    out: dict[str, str | list[str]] = {}
    for name, value in raw.items():
        field = spec.field(name)
        if field is None:
            continue
        if field.kind == "text" and isinstance(value, str):
            out[name] = value
        elif field.kind == "list" and isinstance(value, list):
            out[name] = [v for v in value if isinstance(v, str)]
    return out
