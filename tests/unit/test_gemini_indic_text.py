"""The Gemini emulator writes each of the 14 languages in its own script, read from the `Write in:` line Muse puts
in its prompts, and what it writes for every channel passes the QA gate in that language."""

from __future__ import annotations

import json

import pytest

from infra.local.emulators.gemini.generation import answer_text
from infra.local.emulators.gemini.indic import requested_language
from infra.local.seed import DEMO_BRAND_KIT
from shared.brandkit import BrandKit
from shared.campaigns.nodes.content import with_disclaimer
from shared.campaigns.prompts import WRITER, language_instruction
from shared.campaigns.schemas import CHANNEL_SCHEMAS
from shared.qa.gate import review
from shared.writing.specs import LANGUAGES
from shared.writing.text import script_shares

KIT = BrandKit.model_validate(DEMO_BRAND_KIT)


def _body(language: str, channel: str) -> dict[str, object]:
    prompt = f"Write {channel} copy from this brief alone.\n{language_instruction(language)}\nBrief: {{}}"
    return {"systemInstruction": {"parts": [{"text": WRITER}]},
            "contents": [{"role": "user", "parts": [{"text": prompt}]}],
            "generationConfig": {"responseMimeType": "application/json",
                                 "responseJsonSchema": CHANNEL_SCHEMAS[channel].model_json_schema()}}


@pytest.mark.parametrize("language", [code for code in LANGUAGES if code != "en"])
def test_every_channel_written_by_the_emulator_passes_the_gate_in_its_language(language: str) -> None:
    drafts = {}
    for channel in CHANNEL_SCHEMAS:
        text, _ = answer_text("gemini-2.5-flash", _body(language, channel), None)
        copy = CHANNEL_SCHEMAS[channel].model_validate_json(text).model_dump()
        drafts[channel] = with_disclaimer(channel, copy, " ".join(KIT.disclaimers_for(channel)) or None)
    report = review(drafts, KIT, language=language, layers=("lint", "claims"))
    assert report.passed, json.dumps([f.model_dump() for r in report.items.values() for f in r.findings()],
                                     ensure_ascii=False)[:2000]
    assert {g.id for r in report.items.values() for g in r.guidelines} >= {"script", "length", "numbers", "dates"}


def test_the_language_is_read_as_the_product_states_it_and_english_stays_english() -> None:
    assert requested_language(_body("ta", "ad")) == "ta"
    assert requested_language(_body("en", "ad")) is None
    text, _ = answer_text("gemini-2.5-flash", _body("en", "linkedin_post"), None)
    assert script_shares(text)[1].get("Latin", 0) > 0.9, text
    plain = {"contents": [{"role": "user", "parts": [{"text": language_instruction("ml") + " Say hello."}]}]}
    reply, _ = answer_text("gemini-2.5-flash", plain, None)
    assert reply.startswith("[emulated gemini-2.5-flash] ") and script_shares(reply)[1].get("Malayalam", 0) > 0.6
