"""Campaigns in Indian languages through the whole graph, every model call through google-genai to the Gemini
emulator: Tier 1 briefs and Tier 2 copy come back in the brief's language and script and pass the QA gate
(script, language identity, claims, platform limits, the judge prompted in that language)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from psycopg_pool import ConnectionPool

from infra.local.serve import RunningServer
from shared.api.models import Decision
from shared.auth import Principal
from shared.db.pool import connect
from shared.integrations.gemini import structured_model
from shared.writing.specs import LANGUAGE_NAMES, SCRIPT_OF
from shared.writing.text import script_shares
from tests.integration.gemini_fixtures import gemini_http, gemini_server  # noqa: F401  (fixtures)
from tests.integration.harness import Harness, make_settings

CHANNELS = ["email", "x_thread", "ad"]


@pytest.fixture
def harness(pool: ConnectionPool, migrated_dsn: str, gemini_server: RunningServer) -> Iterator[Harness]:  # noqa: F811
    settings = make_settings(migrated_dsn, GEMINI_BASE_URL=gemini_server.url, GEMINI_API_KEY="local-gemini-key")
    yield Harness(pool=pool, dsn=migrated_dsn, settings=settings, model=structured_model(settings))  # type: ignore[arg-type]


def _events(h: Harness, campaign_id: uuid.UUID, type_: str) -> list[dict[str, Any]]:
    with connect(h.dsn) as conn:
        return [r["data"] for r in conn.execute(
            "SELECT data FROM public.campaign_events WHERE campaign_id = %s AND type = %s ORDER BY id",
            (campaign_id, type_))]


def _to_payment(h: Harness, language: str, **brief: Any) -> tuple[Principal, uuid.UUID]:
    principal = h.workspace()
    campaign_id = h.create(principal, **{"channels": CHANNELS, "language": language, "start_date": "2026-10-05",
                                         "end_date": "2026-10-30", **brief})
    h.pump()
    pending = h.row(campaign_id)["pending_decision"]
    assert pending and pending["kind"] == "strategy_approval", h.row(campaign_id)
    h.api.decide(principal, campaign_id, Decision(decision_id=pending["id"], action="approve"))
    h.pump()
    return principal, campaign_id


def _texts(content: dict[str, Any]) -> list[str]:
    return [v for value in content.values() for v in (value if isinstance(value, list) else [value])
            if isinstance(v, str)]


@pytest.mark.parametrize("language", ["ta", "hi", "te"])
def test_a_move_in_an_indian_language_is_written_in_its_script_and_passes_the_gate(
        harness: Harness, gemini_http: httpx.Client, language: str) -> None:  # noqa: F811
    principal, campaign_id = _to_payment(harness, language, kind="move")
    row = harness.row(campaign_id)
    assert row["status"] == "awaiting_payment", row

    qa = [e for e in _events(harness, campaign_id, "step.completed") if e.get("node") == "qa_gate"]
    assert [e["outcome"] for e in qa] == ["passed"] and qa[0]["findings"] == [], qa
    artifacts = harness.api.get_campaign(principal, campaign_id).artifacts
    assert {a.channel for a in artifacts} == {"email", "x_thread"}
    script = SCRIPT_OF[language]
    for artifact in artifacts:
        for text in _texts(artifact.content):
            letters, shares = script_shares(text)
            assert letters and shares.get(script, 0) >= 0.6, (artifact.channel, text)

    asked = [json.dumps(r, ensure_ascii=False) for r in gemini_http.get("/_emulator/requests").json()]
    label = f"Write in: {LANGUAGE_NAMES[language]} ({language})"
    assert sum(label in r and "Write this brief in the copy's language" in r for r in asked) == 2
    assert any(f"The copy is in {LANGUAGE_NAMES[language]}" in r for r in asked), "the judge was not prompted in it"
    writers = [r for r in asked if label in r and "copy from this brief alone" in r]
    assert len(writers) == 2
    for request in writers:
        tier1 = json.loads(request)["body"]["contents"][-1]["parts"][0]["text"].split("Brief:\n", 1)[1]
        goal = json.loads(tier1)["goal"]
        assert script_shares(goal)[1].get(script, 0) >= 0.6, goal


def test_english_copy_under_a_hindi_brief_is_sent_back_and_rewritten_in_hindi(
        harness: Harness, gemini_http: httpx.Client) -> None:  # noqa: F811
    english = {"subject": "Tea for the festive season", "preheader": "Gift boxes for the people you love",
               "body": "Share a cup with your family this festive season and make every moment count.",
               "cta": "Order now"}
    gemini_http.post("/_emulator/script", json={"rules": [
        {"times": 1, "match": {"contains": "Write email copy from this brief alone"},
         "response": {"json": english}}]}).raise_for_status()
    principal, campaign_id = _to_payment(harness, "hi", kind="move", channels=["email"])

    qa = [e for e in _events(harness, campaign_id, "step.completed") if e.get("node") == "qa_gate"]
    assert [e["outcome"] for e in qa] == ["revise", "passed"], qa
    sent_back = {(f["field"], f["rule"]) for f in qa[0]["findings"]}
    assert {("subject", "script"), ("preheader", "script"), ("body", "script"), ("cta", "script")} <= sent_back
    assert any("Hindi ('hi')" in f["message"] and "Devanagari" in f["message"] for f in qa[0]["findings"])
    assert harness.row(campaign_id)["status"] == "awaiting_payment"
    (email,) = harness.api.get_campaign(principal, campaign_id).artifacts
    assert email.revision == 2
    for text in _texts(email.content):
        assert script_shares(text)[1].get("Devanagari", 0) >= 0.6, text


def test_the_strategy_names_the_festivals_of_the_window_and_target_states(harness: Harness) -> None:
    principal = harness.workspace()
    campaign_id = harness.create(principal, channels=["email"], language="kn", target_states=["KA"],
                                 start_date="2026-10-05", end_date="2026-10-30")
    harness.pump()
    pending = harness.row(campaign_id)["pending_decision"]
    assert pending["kind"] == "strategy_approval"
    festivals = pending["payload"]["festivals"]
    assert "Diwali (2026-11-08, national)" in festivals, festivals
    assert "Karnataka Rajyotsava (2026-11-01, regional: KA)" in festivals, festivals
    ran = [e["specialist"] for e in _events(harness, campaign_id, "step.completed") if e["node"] == "specialist"]
    assert "festival_calendar" in ran


def test_a_channel_override_writes_and_gates_that_channel_in_its_own_language(
        harness: Harness, gemini_http: httpx.Client) -> None:  # noqa: F811
    """Each language is judged on its own, so each draft here is alone in its judge call: the emulator's stand-in
    verdicts (which name no real item) would land on it, so the judge is scripted to find nothing."""
    gemini_http.post("/_emulator/script", json={"rules": [
        {"match": {"contains": "Guideline id: "}, "response": {"json": {"violations": []}}}]}).raise_for_status()
    principal, campaign_id = _to_payment(harness, "ta", kind="move", channel_languages={"email": "en"})
    assert harness.row(campaign_id)["status"] == "awaiting_payment"
    judged = [json.dumps(r, ensure_ascii=False) for r in gemini_http.get("/_emulator/requests").json()
              if "Guideline id: " in json.dumps(r, ensure_ascii=False)]
    assert any("The copy is in Tamil" in r for r in judged) and any("Copy language: English (en)" in r
                                                                    for r in judged)
    drafts = {a.channel: a.content for a in harness.api.get_campaign(principal, campaign_id).artifacts}
    assert all(script_shares(t)[1].get("Latin", 0) > 0.9 for t in _texts(drafts["email"])), drafts["email"]
    assert all(script_shares(t)[1].get("Tamil", 0) >= 0.6 for t in _texts(drafts["x_thread"])), drafts["x_thread"]
    (qa,) = [e for e in _events(harness, campaign_id, "step.completed") if e.get("node") == "qa_gate"]
    assert qa["outcome"] == "passed", qa
