"""The deterministic layer of the QA gate: brand-kit rules checked field by field, with reasons."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from shared.ports import BrandKit


@dataclass(frozen=True)
class QAFinding:
    """One failed guideline on one field of one draft."""

    channel: str
    field: str
    rule: str
    message: str
    draft: str = ""

    def as_dict(self) -> dict[str, str]:
        """JSON form kept in state and shown to humans."""
        return {"draft": self.draft or self.channel, "channel": self.channel, "field": self.field,
                "rule": self.rule, "message": self.message}


def _texts(content: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, value in content.items():
        if isinstance(value, str):
            out.append((name, value))
        elif isinstance(value, list):
            out.extend((f"{name}[{i}]", item) for i, item in enumerate(value) if isinstance(item, str))
    return out


def check_content(channel: str, content: dict[str, Any], kit: BrandKit) -> tuple[int, list[QAFinding]]:
    """Check one channel's copy; returns (guidelines tested, findings)."""
    findings: list[QAFinding] = []
    tested = 0
    for field_name, text in _texts(content):
        for term, substitute in kit.banned_terms.items():
            tested += 1
            if re.search(rf"(?<!\w){re.escape(term)}(?!\w)", text, flags=re.IGNORECASE):
                findings.append(QAFinding(channel, field_name, "banned_term",
                                          f"uses banned term {term!r}; write {substitute!r} instead"))
    disclaimer = kit.required_disclaimers.get(channel)
    if disclaimer:
        tested += 1
        joined = " ".join(text for _, text in _texts(content))
        if disclaimer.lower() not in joined.lower():
            findings.append(QAFinding(channel, "*", "required_disclaimer",
                                      f"must include the disclaimer {disclaimer!r}"))
    return tested, findings


def review(drafts: dict[str, dict[str, Any]], kit: BrandKit) -> dict[str, Any]:
    """Check every draft; score = guidelines passed ÷ guidelines tested."""
    tested = 0
    findings: list[QAFinding] = []
    for key, content in drafts.items():
        channel = key.partition("#")[0]
        n, found = check_content(channel, content, kit)
        tested += n
        findings.extend(QAFinding(f.channel, f.field, f.rule, f.message, draft=key) for f in found)
    failed = len(findings)
    score = 1.0 if tested == 0 else round((tested - failed) / tested, 4)
    return {
        "passed": failed == 0,
        "score": score,
        "tested": tested,
        "findings": [f.as_dict() for f in findings],
        "failing_channels": sorted({f.channel for f in findings}),
    }
