"""Every planted violation caught by the deterministic layers; no false failure on the clean versions.

The cases live in `data/qa_brand_pairs.json`: brand kits (a tea brand in English, Hindi and Marathi, a
GST-invoicing SaaS, a Hindi skincare brand, a Tamil edtech, a Bengali sweet shop) and, per case, a
clean copy and the same copy with violations planted, each named by guideline, field and evidence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.brandkit import BrandKit
from shared.qa.gate import check
from shared.qa.report import QAReport

DATA = json.loads((Path(__file__).parent / "data" / "qa_brand_pairs.json").read_text(encoding="utf-8"))
KITS = {name: BrandKit.model_validate(kit) for name, kit in DATA["kits"].items()}
CASES: list[dict[str, Any]] = DATA["cases"]


def _check(case: dict[str, Any], version: str) -> QAReport:
    language = case.get("violating_language", case["language"]) if version == "violating" else case["language"]
    return check(case["content_type"], case[version], KITS[case["kit"]], language=language,
                 sources=case.get("sources", []), layers=("lint", "claims"))


def test_the_set_is_large_and_varied() -> None:
    assert len(CASES) >= 30
    assert len({c["id"] for c in CASES}) == len(CASES)
    assert len({p["guideline"] for c in CASES for p in c["planted"]}) >= 14
    assert {c["language"] for c in CASES} | {c.get("violating_language") for c in CASES} >= {
        "en", "hi", "mr", "ta", "bn"}
    assert {c["content_type"] for c in CASES} == {"email", "linkedin_post", "x_thread", "instagram_caption", "ad",
                                                  "landing_page", "video_script"}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_clean_version_has_no_finding(case: dict[str, Any]) -> None:
    report = _check(case, "clean")
    assert [f.message for f in report.findings()] == []
    assert report.passed and report.score == 1.0


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_every_planted_violation_is_caught_and_nothing_else(case: dict[str, Any]) -> None:
    findings = _check(case, "violating").findings()
    for planted in case["planted"]:
        hits = [f for f in findings if f.guideline == planted["guideline"] and f.field == planted["field"]]
        assert hits, f"missed {planted}; found {[(f.guideline, f.field) for f in findings]}"
        if "evidence" in planted:
            assert any(f.evidence and planted["evidence"].lower() in f.evidence.lower() for f in hits), (
                planted, [f.evidence for f in hits])
        assert all(f.blocking and f.message for f in hits)
    expected = {(p["guideline"], p["field"]) for p in case["planted"]}
    unexpected = [f.message for f in findings if (f.guideline, f.field) not in expected]
    assert unexpected == []
