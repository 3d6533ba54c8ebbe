"""The content canon: frameworks, templates and compliance rules per content type, kept as data.

`canon/canon.json` is the source; edit it (and bump its `version`) to change what writers are told.
The loaded canon is cached per process and carries a version that combines the declared version
with a hash of the file, so an artifact records exactly which canon produced it. For the channels
of `CHANNEL_SCHEMAS`, the hard limits (characters, items) are read from those schemas, so the canon
and validation can never disagree.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.channels import CHANNEL_SCHEMAS

ContentType = Literal[
    "email", "ad", "landing_page", "video_script", "x_thread", "linkedin_post", "instagram_caption"
]
CANON_PATH = Path(__file__).with_name("canon") / "canon.json"


class CanonField(BaseModel):
    """One field of a content type and how to write it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    guidance: str
    required: bool = True
    max_length: int | None = None
    """Hard limit in characters (from the channel schema where there is one)."""
    item_max_length: int | None = None
    """Hard limit per item for list fields (e.g. 280 per X post)."""
    max_items: int | None = None
    min_items: int | None = None
    recommended_max_length: int | None = None
    """Soft limit: longer is allowed but reported as a warning."""
    recommended_max_items: int | None = None


class CanonEntry(BaseModel):
    """The canon of one content type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    content_type: ContentType
    version: str
    framework: str
    framework_steps: list[str]
    fields: list[CanonField]
    template: str
    compliance: list[str]
    dos: list[str] = Field(default_factory=list)
    donts: list[str] = Field(default_factory=list)

    def field(self, name: str) -> CanonField | None:
        """The canon of field `name`, if the content type has it."""
        return next((f for f in self.fields if f.name == name), None)


class Canon(BaseModel):
    """Every content type's canon, at one version."""

    model_config = ConfigDict(frozen=True)

    version: str
    entries: dict[str, CanonEntry]

    def get(self, content_type: str) -> CanonEntry:
        """The canon of `content_type`; KeyError names the known types."""
        try:
            return self.entries[content_type]
        except KeyError:
            raise KeyError(f"no canon for content type {content_type!r}; known: {sorted(self.entries)}") from None

    def fetch(self, content_type: str) -> dict[str, Any]:
        """The entry of `content_type` as JSON (empty if none): the `shared.ports.Canon` port."""
        entry = self.entries.get(content_type)
        return entry.model_dump(mode="json", exclude_none=True) if entry else {}


def _schema_limits(content_type: str) -> dict[str, dict[str, Any]]:
    """Field → hard limits from the channel's pydantic schema (empty for types without one)."""
    schema_model = CHANNEL_SCHEMAS.get(content_type)
    if schema_model is None:
        return {}
    schema = schema_model.model_json_schema()
    required = set(schema.get("required", []))
    limits: dict[str, dict[str, Any]] = {}
    for name, prop in schema.get("properties", {}).items():
        items = prop.get("items") or {}
        limits[name] = {
            "required": name in required,
            "max_length": prop.get("maxLength"),
            "item_max_length": items.get("maxLength"),
            "max_items": prop.get("maxItems"),
            "min_items": prop.get("minItems"),
        }
    return limits


def parse_canon(raw: bytes) -> Canon:
    """Build the canon from the JSON file's bytes; ValueError names a field the channel schema lacks."""
    data = json.loads(raw)
    version = f"{data['version']}+{hashlib.sha256(raw).hexdigest()[:8]}"
    entries: dict[str, CanonEntry] = {}
    for content_type, entry in data["content_types"].items():
        limits = _schema_limits(content_type)
        fields = []
        for spec in entry["fields"]:
            if limits and spec["name"] not in limits:
                raise ValueError(f"canon field {content_type}.{spec['name']} is not in the {content_type} schema "
                                 f"(fields: {sorted(limits)}); rename it or remove it from canon.json")
            hard = {k: v for k, v in limits.get(spec["name"], {}).items() if v is not None}
            fields.append(CanonField.model_validate({**spec, **hard}))
        entries[content_type] = CanonEntry.model_validate(
            {**entry, "fields": fields, "content_type": content_type, "version": version})
    return Canon(version=version, entries=entries)


@lru_cache(maxsize=4)
def load_canon(path: Path = CANON_PATH) -> Canon:
    """The canon at `path`, read once per process."""
    return parse_canon(path.read_bytes())
