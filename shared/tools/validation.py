"""Deterministic checks of one channel's copy: the channel schema's hard limits, then the canon's rules.

Errors make the copy invalid (it would be cut off or rejected by the channel); warnings are the
canon's soft limits (e.g. a subject line past 50 characters truncates on phones).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.channels import CHANNEL_SCHEMAS
from shared.tools.canon import Canon

Severity = Literal["error", "warning"]


class ContentIssue(BaseModel):
    """One problem with one field, and how to fix it."""

    model_config = ConfigDict(frozen=True)

    field: str
    rule: str
    severity: Severity
    message: str


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "*"


def _schema_issue(channel: str, error: Any) -> ContentIssue:
    path, kind, ctx = _path(error["loc"]), error["type"], error.get("ctx") or {}
    value = error.get("input")
    if kind == "string_too_long":
        limit = ctx.get("max_length")
        over = len(value) - limit if isinstance(value, str) and limit is not None else None
        return ContentIssue(field=path, rule="max_length", severity="error",
                            message=f"{path} is {len(value)} characters; the {channel} limit is {limit}, "
                                    f"shorten it by {over}")
    if kind == "too_long":
        return ContentIssue(field=path, rule="max_items", severity="error",
                            message=f"{path} has {ctx.get('actual_length')} items; {channel} allows at most "
                                    f"{ctx.get('max_length')}")
    if kind == "too_short":
        return ContentIssue(field=path, rule="min_items", severity="error",
                            message=f"{path} needs at least {ctx.get('min_length')} item(s) for {channel}")
    if kind == "missing":
        return ContentIssue(field=path, rule="required", severity="error",
                            message=f"{path} is required for {channel}")
    return ContentIssue(field=path, rule="type", severity="error", message=f"{path}: {error['msg']}")


def validate_channel_content(channel: str, content: dict[str, Any], canon: Canon) -> list[ContentIssue]:
    """Every issue of `content` as `channel` copy; empty when it is clean."""
    schema = CHANNEL_SCHEMAS[channel]
    issues: list[ContentIssue] = []
    known = set(schema.model_fields)
    issues += [ContentIssue(field=name, rule="unknown_field", severity="error",
                            message=f"{name} is not a field of {channel} copy; use only {sorted(known)}")
               for name in content if name not in known]
    try:
        schema.model_validate(content)
    except ValidationError as exc:
        issues += [_schema_issue(channel, error) for error in exc.errors()]
    entry = canon.get(channel)
    for name in known:
        value = content.get(name)
        spec = entry.field(name)
        if isinstance(value, str):
            if spec is not None and spec.required and not value.strip():
                issues.append(ContentIssue(field=name, rule="empty", severity="error",
                                           message=f"{name} is empty; write the {channel} {name}"))
            elif spec and spec.recommended_max_length and len(value) > spec.recommended_max_length:
                issues.append(ContentIssue(
                    field=name, rule="recommended_length", severity="warning",
                    message=f"{name} is {len(value)} characters; the canon recommends at most "
                            f"{spec.recommended_max_length} ({spec.guidance})"))
        elif isinstance(value, list):
            issues += _list_issues(channel, name, value, spec)
    failing = {issue.field for issue in issues if issue.severity == "error"}
    return [issue for issue in issues if issue.severity == "error" or issue.field not in failing]


def _list_issues(channel: str, name: str, items: list[Any], spec: Any) -> list[ContentIssue]:
    issues: list[ContentIssue] = []
    for index, item in enumerate(items):
        where = f"{name}[{index}]"
        if isinstance(item, str) and not item.strip():
            issues.append(ContentIssue(field=where, rule="empty", severity="error",
                                       message=f"{where} is empty; remove it or write it"))
        elif isinstance(item, str) and spec and spec.recommended_max_length \
                and len(item) > spec.recommended_max_length:
            issues.append(ContentIssue(
                field=where, rule="recommended_length", severity="warning",
                message=f"{where} is {len(item)} characters; the canon recommends at most "
                        f"{spec.recommended_max_length}"))
        if name == "hashtags" and isinstance(item, str) and item.strip() \
                and (not item.startswith("#") or any(c.isspace() for c in item.strip()) or len(item.strip()) < 2):
            issues.append(ContentIssue(field=where, rule="hashtag_format", severity="error",
                                       message=f"{where} {item!r} must be '#' followed by a word without spaces"))
    if spec and spec.recommended_max_items and len(items) > spec.recommended_max_items:
        issues.append(ContentIssue(field=name, rule="recommended_items", severity="warning",
                                   message=f"{name} has {len(items)} items; the canon recommends at most "
                                           f"{spec.recommended_max_items} for {channel}"))
    return issues
