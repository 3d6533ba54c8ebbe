"""Structured output: a deterministic JSON value valid against the request's response schema."""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from datetime import UTC, datetime, timedelta
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parser  # type: ignore[attr-defined]
from typing import Any

from infra.local.emulators.gemini.indic import text_in
from infra.local.emulators.gemini.text import keywords, seed_int

_MAX_SCHEMA_DEPTH = 24
_SHALLOW_DEPTH = 12
"""From this nesting depth (or on re-entering a recursive `$ref`) only required content is generated."""


class SchemaFaker:
    """Generate a deterministic JSON value that is valid against a response schema.

    Accepts both Gemini's OpenAPI subset (`responseSchema`: UPPERCASE types, snake_case or camelCase
    keywords, `nullable`, `property_ordering`) and standard JSON Schema (`responseJsonSchema`: `$defs`,
    `$ref`, `anyOf`, `const`...). Strings are marked as emulated and echo the field name and the gist
    of the prompt; numbers respect bounds; enums take their first value, rotating by array position
    (so the n-th item of a list, and the fields of that item, differ from their siblings).
    """

    def __init__(self, schema: dict[str, Any], seed: str, language: str | None = None) -> None:
        self._root = _normalise_schema(schema)
        self._seed = seed
        self._language = language
        """Free-text strings are written in this language's script (`indic.text_in`); None: English."""
        self._gist = " ".join(keywords(seed, 6)) or "request"
        self._active_refs: list[str] = []

    def generate(self) -> Any:
        return self._value(self._root, "$", "value", 0, 0)

    def _value(self, schema: Any, path: str, label: str, ordinal: int, depth: int) -> Any:
        if not isinstance(schema, dict) or depth > _MAX_SCHEMA_DEPTH:
            return None
        reference = schema.get("$ref")
        if not isinstance(reference, str):
            return self._plain(self._flatten(schema), path, label, ordinal, depth)
        if reference in self._active_refs:
            depth = max(depth, _SHALLOW_DEPTH)
        self._active_refs.append(reference)
        try:
            return self._plain(self._flatten(schema), path, label, ordinal, depth)
        finally:
            self._active_refs.pop()

    def _plain(self, schema: dict[str, Any], path: str, label: str, ordinal: int, depth: int) -> Any:
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][ordinal % len(schema["enum"])]
        branches = schema.get("anyOf") or schema.get("oneOf")
        if branches:
            return self._union(schema, branches, path, label, ordinal, depth)
        kind = _schema_type(schema)
        if kind != "null" and schema.get("nullable") and depth >= _SHALLOW_DEPTH:
            return None
        generator = {
            "string": self._string,
            "integer": self._integer,
            "number": self._number,
            "boolean": self._boolean,
            "array": self._array,
            "object": self._object,
        }.get(kind)
        return generator(schema, path, label, ordinal, depth) if generator else None

    def _flatten(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Resolve `$ref` and merge `allOf` so the rest sees one plain schema."""
        for _ in range(_MAX_SCHEMA_DEPTH):
            if "$ref" in schema:
                siblings = {k: v for k, v in schema.items() if k != "$ref"}
                schema = {**self._resolve(schema["$ref"]), **siblings}
            elif schema.get("allOf"):
                merged = {k: v for k, v in schema.items() if k != "allOf"}
                for part in schema["allOf"]:
                    merged = _merge_schemas(merged, self._flatten(part))
                schema = merged
            else:
                break
        return schema

    def _resolve(self, reference: str) -> dict[str, Any]:
        node: Any = self._root
        for token in reference.lstrip("#").strip("/").split("/"):
            if token:
                node = node.get(token.replace("~1", "/").replace("~0", "~"), {})
        return node if isinstance(node, dict) else {}

    def _union(
        self, schema: dict[str, Any], branches: list[Any], path: str, label: str, ordinal: int, depth: int
    ) -> Any:
        options = [b for b in branches if isinstance(b, dict)]
        concrete = [b for b in options if not _is_null_schema(self._flatten(b))]
        nullable = len(concrete) < len(options) or bool(schema.get("nullable"))
        if not concrete or (nullable and depth >= _SHALLOW_DEPTH):
            return None
        base = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        return self._value(_merge_schemas(base, concrete[0]), path, label, ordinal, depth + 1)

    def _string(self, schema: dict[str, Any], path: str, label: str, ordinal: int, depth: int) -> str:
        formatted = self._formatted(schema.get("format"), path, label)
        if formatted is not None:
            return formatted
        pattern = schema.get("pattern")
        if pattern:
            candidate = _string_for_pattern(pattern)
            if candidate is not None:
                return candidate
        if self._language is not None:
            text = text_in(self._language, f"{self._seed}|{path}", max_length=schema.get("maxLength"), label=label)
            return _fit_length(text, schema.get("minLength"), schema.get("maxLength"))
        if "hashtag" in label.lower():
            words = self._gist.split()[ordinal % 3:][:3] or ["Emulated"]
            return _fit_length("#" + "".join(w[:1].upper() + w[1:] for w in words), None, schema.get("maxLength"))
        suffix = f" #{ordinal + 1}" if ordinal or path.endswith("]") else ""
        text = f"[emulated] {_humanise(label)}{suffix}: {self._gist}"
        return _fit_length(text, schema.get("minLength"), schema.get("maxLength"))

    def _formatted(self, fmt: str | None, path: str, label: str) -> str | None:
        if not fmt:
            return None
        day = datetime(2026, 1, 1, 9, 30, tzinfo=UTC) + timedelta(days=self._int(path) % 365)
        slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "item"
        return {
            "date-time": day.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "date": day.strftime("%Y-%m-%d"),
            "time": day.strftime("%H:%M:%S"),
            "email": f"emulated.{slug}@example.com",
            "uri": f"https://example.com/emulated/{slug}",
            "url": f"https://example.com/emulated/{slug}",
            "hostname": f"{slug}.example.com",
            "uuid": str(uuid.UUID(bytes=hashlib.blake2b(f"{self._seed}|{path}".encode(), digest_size=16).digest())),
            "ipv4": "192.0.2.1",
            "ipv6": "2001:db8::1",
            "duration": "PT1H",
        }.get(fmt)

    def _integer(self, schema: dict[str, Any], path: str, label: str, ordinal: int, depth: int) -> int:
        low, high = _bounds(schema, integer=True)
        value = _pick_in_range(low, high, self._int(path))
        step = schema.get("multipleOf")
        if step and float(step).is_integer() and step > 0:
            step = int(step)
            rounded = math.ceil(value / step) * step
            value = rounded if high is None or rounded <= high else math.floor(value / step) * step
        return int(value)

    def _number(self, schema: dict[str, Any], path: str, label: str, ordinal: int, depth: int) -> float:
        low, high = _bounds(schema, integer=False)
        step = schema.get("multipleOf")
        if step and step > 0:
            return _multiple_in_range(float(step), low, high, self._int(path))
        fraction = 0.1 + (self._int(path) % 81) / 100
        if low is not None and high is not None:
            value = round(low + (high - low) * fraction, 2)
            return value if low <= value <= high else (low + high) / 2
        if low is not None:
            return round(low + 1 + fraction * 10, 2)
        if high is not None:
            return round(high - 1 - fraction * 10, 2)
        return round(fraction * 10, 2)

    def _boolean(self, schema: dict[str, Any], path: str, label: str, ordinal: int, depth: int) -> bool:
        return self._int(path) % 2 == 0

    def _array(self, schema: dict[str, Any], path: str, label: str, ordinal: int, depth: int) -> list[Any]:
        prefix = schema.get("prefixItems") or []
        minimum = int(schema.get("minItems") or 0)
        unknown_items = not schema.get("items") and not prefix
        wanted = 0 if depth >= _SHALLOW_DEPTH or unknown_items else 1 + self._int(path) % 2
        count = max(minimum, wanted, len(prefix))
        if schema.get("maxItems") is not None:
            count = min(count, int(schema["maxItems"]))
        item_label = _singular(label)
        values = []
        for index in range(count):
            item_schema = prefix[index] if index < len(prefix) else schema.get("items", {})
            if item_schema is False:
                break
            values.append(self._value(item_schema, f"{path}[{index}]", item_label, index, depth + 1))
        if schema.get("uniqueItems"):
            values = _unique(values)
        return values

    def _object(self, schema: dict[str, Any], path: str, label: str, ordinal: int, depth: int) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        ordering = schema.get("propertyOrdering") or []
        names = [n for n in ordering if n in properties] + [n for n in properties if n not in ordering]
        if depth >= _SHALLOW_DEPTH:
            names = [name for name in names if name in required]
        result = {name: self._value(properties[name], f"{path}.{name}", name, ordinal, depth + 1) for name in names}
        extra = schema.get("additionalProperties")
        minimum = int(schema.get("minProperties") or (0 if properties else 1))
        if isinstance(extra, dict) and len(result) < minimum:
            for index in range(minimum - len(result)):
                key = f"emulated_{_singular(label)}_{index + 1}"
                result[key] = self._value(extra, f"{path}.{key}", key, index, depth + 1)
        return result

    def _int(self, path: str) -> int:
        return seed_int(self._seed, path)


def _normalise_schema(node: Any) -> Any:
    """camelCase the keywords and lowercase the types, leaving property names untouched."""
    if isinstance(node, list):
        return [_normalise_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    result: dict[str, Any] = {}
    for key, value in node.items():
        name = _camel(key)
        if name in ("properties", "$defs", "definitions", "patternProperties") and isinstance(value, dict):
            result[name] = {prop: _normalise_schema(sub) for prop, sub in value.items()}
        elif name == "type":
            result[name] = [t.lower() for t in value] if isinstance(value, list) else str(value).lower()
        elif name in ("items", "additionalProperties", "not", "anyOf", "oneOf", "allOf", "prefixItems"):
            result[name] = _normalise_schema(value)
        else:
            result[name] = value
    return result


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest) if rest and head else key


def _is_null_schema(schema: dict[str, Any]) -> bool:
    return _schema_type(schema) == "null" and "const" not in schema and "enum" not in schema


def _schema_type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        concrete = [k for k in kind if k != "null"]
        return concrete[0] if concrete else "null"
    if kind and kind != "type_unspecified":
        return kind
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _merge_schemas(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **extra}
    if "properties" in base and "properties" in extra:
        merged["properties"] = {**base["properties"], **extra["properties"]}
    if "required" in base and "required" in extra:
        merged["required"] = list(dict.fromkeys([*base["required"], *extra["required"]]))
    if "type" not in extra and "type" in base:
        merged["type"] = base["type"]
    return merged


def _bounds(schema: dict[str, Any], *, integer: bool) -> tuple[float | None, float | None]:
    """Inclusive bounds, folding in both draft-4 (boolean) and modern (numeric) exclusive bounds."""
    low, high = schema.get("minimum"), schema.get("maximum")
    epsilon = 1 if integer else 0.01
    exclusive_low, exclusive_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if exclusive_low is True and low is not None:
        low += epsilon
    elif isinstance(exclusive_low, int | float) and not isinstance(exclusive_low, bool):
        low = max(low, exclusive_low + epsilon) if low is not None else exclusive_low + epsilon
    if exclusive_high is True and high is not None:
        high -= epsilon
    elif isinstance(exclusive_high, int | float) and not isinstance(exclusive_high, bool):
        high = min(high, exclusive_high - epsilon) if high is not None else exclusive_high - epsilon
    if integer:
        low = math.ceil(low) if low is not None else None
        high = math.floor(high) if high is not None else None
    return low, high


def _pick_in_range(low: float | None, high: float | None, seed: int) -> float:
    if low is not None and high is not None:
        return low + seed % (int(high - low) + 1) if high >= low else low
    if low is not None:
        return low + seed % 10
    if high is not None:
        return high - seed % 10
    return 1 + seed % 10


def _multiple_in_range(step: float, low: float | None, high: float | None, seed: int) -> float:
    """A multiple of `step` within the inclusive bounds (any of ten when a bound is open)."""
    if low is not None:
        first = math.ceil(low / step)
    else:
        first = math.floor(high / step) - 9 if high is not None else 1
    last = math.floor(high / step) if high is not None else first + 9
    return round((first + seed % max(last - first + 1, 1)) * step, 10)


def _fit_length(text: str, minimum: int | None, maximum: int | None) -> str:
    if minimum and len(text) < minimum:
        text = (text + " " + "emulated " * math.ceil(minimum / 9))[: max(minimum, len(text))]
    if maximum is not None and len(text) > maximum:
        text = text[: int(maximum)].rstrip() if maximum else ""
    if minimum and len(text) < minimum:
        text = text.ljust(int(minimum), ".")
    return text


def _string_for_pattern(pattern: str) -> str | None:
    """A string matching a simple regular expression, or None when it cannot be produced."""
    try:
        candidate = _render_regex(sre_parser.parse(pattern))
    except Exception:
        return None
    return candidate if re.search(pattern, candidate) else None


def _render_regex(tokens: Any) -> str:
    c = sre_constants
    out: list[str] = []
    for op, arg in tokens:
        if op is c.LITERAL:
            out.append(chr(arg))
        elif op is c.NOT_LITERAL:
            out.append("a" if chr(arg) != "a" else "b")
        elif op is c.ANY:
            out.append("x")
        elif op is c.IN:
            out.append(_render_class(arg, c))
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            low, _high, sub = arg
            out.append(_render_regex(sub) * max(int(low), 1 if _high else 0))
        elif op is c.SUBPATTERN:
            out.append(_render_regex(arg[-1]))
        elif op is c.BRANCH:
            out.append(_render_regex(arg[1][0]))
        elif op in (c.AT, c.ASSERT, c.ASSERT_NOT):
            continue
        else:
            raise ValueError(f"unsupported regex op {op}")
    return "".join(out)


def _render_class(items: Any, c: Any) -> str:
    if items and items[0][0] is c.NEGATE:
        return "x"
    op, arg = items[0]
    if op is c.LITERAL:
        return chr(arg)
    if op is c.RANGE:
        return chr(arg[0])
    if op is c.CATEGORY:
        return {c.CATEGORY_DIGIT: "7", c.CATEGORY_SPACE: " "}.get(arg, "a")
    raise ValueError("unsupported character class")


def _unique(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def _humanise(label: str) -> str:
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", label).replace("_", " ").replace("-", " ").split()
    return " ".join(words).lower() or "value"


def _singular(label: str) -> str:
    if label.endswith("ies") and len(label) > 4:
        return label[:-3] + "y"
    if label.endswith("s") and not label.endswith("ss") and len(label) > 3:
        return label[:-1]
    return label
