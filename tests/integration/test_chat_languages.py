"""The chat path in Indian languages, every model call through google-genai to the Gemini emulator (which writes
in the script a prompt's `Write in:` line asks for): content_execution writes in the requested language, the QA
gate behind content_execution and validate_content checks copy in its language (the judge prompted in it), and
create_campaign carries the language into the campaign's brief. Real Postgres and the real API service."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from psycopg_pool import ConnectionPool

from infra.local.serve import RunningServer
from shared.api.service import Api
from shared.auth import Principal
from shared.chat.agent import ChatOrchestrator, ChatOverrides, MemorySink, chat_deps
from shared.conversations import ChatOptions, TurnInput
from shared.conversations.events import ArtifactEvent, ToolFinished
from shared.db.brandkits import save_kit
from shared.db.pool import connect
from shared.db.workspaces import ensure_workspace
from shared.settings import Settings
from shared.testing.fakes import CannedSearch, RecordingQueue
from shared.writing.text import script_shares
from tests.integration.gemini_fixtures import GEMINI_CONFIG
from tests.integration.harness import TEST_ENV

PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"
BRIEF = {"objective": "Sell festive tea gift boxes", "audience": "Families in Chennai", "tone": ["warm"],
         "key_messages": ["A gift box of teas for the family"]}
ENGLISH = {"subject": "Tea for the festive season", "preheader": "Gift boxes for the people you love",
           "body": "Share a cup with your family this festive season and make every moment count.",
           "cta": "Order now"}
NO_VIOLATIONS = {"match": {"contains": "Guideline id: "}, "response": {"json": {"violations": []}}}
"""The judge finds nothing: the emulator's stand-in verdicts name no real field of the copy."""


@dataclass
class Member:
    workspace_id: str
    principal: Principal


@pytest.fixture
def settings(gemini_server: RunningServer, migrated_dsn: str) -> Settings:
    env = {**TEST_ENV, "DATABASE_URL": migrated_dsn, "GEMINI_API_KEY": GEMINI_CONFIG.gemini_api_key,
           "GEMINI_BASE_URL": gemini_server.url, "MUSE_QA_JUDGE": "true", "MUSE_CHAT_MAX_TOOL_ROUNDS": "4"}
    return Settings(**env)  # type: ignore[arg-type]


@pytest.fixture
def api(settings: Settings, pool: ConnectionPool) -> Api:
    return Api(settings=settings, pool=pool, queue=RecordingQueue(), phonepe_factory=lambda: None)  # type: ignore[arg-type,return-value]


def member_with(dsn: str, kit: dict[str, Any]) -> Member:
    user_id = str(uuid.uuid4())
    slug = f"lang-{uuid.uuid4().hex[:10]}"
    with connect(dsn) as conn, conn.transaction():
        workspace_id = ensure_workspace(conn, slug=slug, name=slug, user_id=user_id)
        save_kit(conn, workspace_id, kit)
    claims = {"sub": user_id, "role": "authenticated", "aud": "authenticated",
              "app_metadata": {"workspace_id": workspace_id}}
    return Member(workspace_id, Principal(user_id=uuid.UUID(user_id), claims=claims))


def orchestrator(settings: Settings, pool: ConnectionPool, api: Api, member: Member) -> tuple[ChatOrchestrator,
                                                                                                MemorySink]:
    sink = MemorySink()
    deps = chat_deps(settings, pool, workspace_id=member.workspace_id, principal=member.principal,
                     options=ChatOptions(), events=sink,
                     overrides=ChatOverrides(knowledge=CannedSearch(), web=CannedSearch(), api=api))
    assert isinstance(deps.orchestrator, ChatOrchestrator)
    return deps.orchestrator, sink


def turn(gemini_http: httpx.Client, chat: ChatOrchestrator, sink: MemorySink, member: Member, number: int,
         *function_calls: dict[str, Any]) -> list[ToolFinished]:
    """One turn in which the strong model makes `function_calls`, then answers; the calls' results."""
    gemini_http.post("/_emulator/script", json={"rules": [
        {"times": 1, "match": {"model": PRO}, "response": {"function_calls": list(function_calls)}},
        {"times": 1, "match": {"model": PRO}, "response": {"text": "Done."}}, NO_VIOLATIONS]}).raise_for_status()
    before = len(sink.events)
    chat.answer(TurnInput(conversation_id=str(uuid.uuid4()), workspace_id=member.workspace_id, turn=number,
                          message="Write it", history="user: Write it", message_id=f"m-{number}", events=sink,
                          options=ChatOptions()))
    return [e for e in sink.events[before:] if isinstance(e, ToolFinished)]


def texts(content: dict[str, Any]) -> list[str]:
    return [v for value in content.values() for v in (value if isinstance(value, list) else [value])
            if isinstance(v, str)]


def requests(gemini_http: httpx.Client) -> list[str]:
    return [json.dumps(r, ensure_ascii=False) for r in gemini_http.get("/_emulator/requests").json()]


def test_copy_asked_for_in_tamil_is_written_in_tamil_script_and_validate_content_passes_it(
        settings: Settings, pool: ConnectionPool, migrated_dsn: str, api: Api, gemini_http: httpx.Client) -> None:
    member = member_with(migrated_dsn, {"voice": ["warm"], "banned_terms": [{"term": "cheap"}]})
    chat, sink = orchestrator(settings, pool, api, member)

    (written,) = turn(gemini_http, chat, sink, member, 1, {"name": "content_execution", "args": {
        "channel": "email", "brief": {**BRIEF, "language": "ta"}}})
    assert written.ok, written.result
    output = written.result["output"]
    assert output["language"] == "ta"
    for text in texts(output["content"]):
        assert script_shares(text)[1].get("Tamil", 0) >= 0.6, text
    assert output["qa"]["passed"] is True and output["qa"]["language"] == "ta", output["qa"]
    end = [e for e in sink.events if isinstance(e, ArtifactEvent) and e.type == "end"][-1]
    assert end.metadata.qa == output["qa"] and script_shares(end.content or "")[1].get("Tamil", 0) >= 0.6
    started = [e.content for e in sink.events if e.kind == "tool.started"]  # type: ignore[union-attr]
    assert started == ["Writing the email copy in Tamil"]
    writer = next(r for r in gemini_http.get("/_emulator/requests").json()
                  if r["model"] == FLASH and "Canon " in json.dumps(r))
    assert "Write in: Tamil (ta), Tamil script." in json.dumps(writer, ensure_ascii=False)

    gemini_http.delete("/_emulator/requests").raise_for_status()
    (checked,) = turn(gemini_http, chat, sink, member, 2, {"name": "validate_content", "args": {
        "channel": "email", "content": output["content"], "language": "ta"}})
    verdict = checked.result["output"]
    assert verdict["valid"] is True and verdict["language"] == "ta"
    assert verdict["qa"]["passed"] is True and verdict["qa"]["findings"] == [], verdict["qa"]
    judged = [r for r in requests(gemini_http) if "Guideline id: " in r]
    assert judged and all("The copy is in Tamil" in r for r in judged), "the judge was not prompted in Tamil"


def test_english_copy_validated_as_hindi_is_refused_with_the_script_finding(
        settings: Settings, pool: ConnectionPool, migrated_dsn: str, api: Api, gemini_http: httpx.Client) -> None:
    member = member_with(migrated_dsn, {"voice": ["warm"]})
    chat, sink = orchestrator(settings, pool, api, member)

    as_hindi, as_english = turn(gemini_http, chat, sink, member, 1,
                                {"name": "validate_content", "args": {"channel": "email", "content": ENGLISH,
                                                                      "language": "hi"}},
                                {"name": "validate_content", "args": {"channel": "email", "content": ENGLISH}})
    refused = as_hindi.result["output"]
    assert refused["language"] == "hi" and refused["qa"]["passed"] is False and refused["qa"]["blocking"]
    scripts = {f["field"]: f["message"] for f in refused["qa"]["findings"] if f["guideline"] == "script"}
    assert {"subject", "preheader", "body", "cta"} <= set(scripts), refused["qa"]
    assert "Hindi ('hi')" in scripts["body"] and "Devanagari" in scripts["body"]
    passed = as_english.result["output"]
    assert passed["language"] == "en" and passed["qa"]["passed"] is True, passed["qa"]


def test_the_kit_primary_language_is_the_default_for_copy_and_created_campaigns(
        settings: Settings, pool: ConnectionPool, migrated_dsn: str, api: Api, gemini_http: httpx.Client) -> None:
    member = member_with(migrated_dsn, {"voice": ["warm"], "languages": ["hi", "en"]})
    chat, sink = orchestrator(settings, pool, api, member)
    created_brief = {"title": "Diwali teaser", "objective": "Warm up the list", "channels": ["email"]}

    written, created = turn(gemini_http, chat, sink, member, 1,
                            {"name": "content_execution", "args": {"channel": "ad", "brief": BRIEF}},
                            {"name": "create_campaign", "args": {"kind": "move", "brief": created_brief}})
    assert written.result["output"]["language"] == "hi" and written.result["output"]["qa"]["passed"] is True
    for text in texts(written.result["output"]["content"]):
        assert script_shares(text)[1].get("Devanagari", 0) >= 0.6, text
    campaign = api.get_campaign(member.principal, uuid.UUID(created.result["output"]["campaign_id"]))
    assert campaign.brief["language"] == "hi" and "channel_languages" not in campaign.brief


def test_create_campaign_from_chat_carries_the_language_into_the_campaigns_brief(
        settings: Settings, pool: ConnectionPool, migrated_dsn: str, api: Api, gemini_http: httpx.Client) -> None:
    member = member_with(migrated_dsn, {"voice": ["warm"]})
    chat, sink = orchestrator(settings, pool, api, member)
    brief = {"title": "Pongal gifting", "objective": "Sell Pongal gift boxes", "channels": ["email", "x_thread"],
             "language": "ta", "channel_languages": {"email": "en"}}

    (created,) = turn(gemini_http, chat, sink, member, 1,
                      {"name": "create_campaign", "args": {"kind": "move", "brief": brief}})
    assert created.ok and created.result["output"]["created"] is True, created.result
    campaign = api.get_campaign(member.principal, uuid.UUID(created.result["output"]["campaign_id"]))
    assert campaign.brief["language"] == "ta" and campaign.brief["channel_languages"] == {"email": "en"}

    declared = {d["name"]: d for d in gemini_http.get("/_emulator/requests").json()[0]["body"]["tools"][0][
        "functionDeclarations"]}
    campaign_brief = declared["create_campaign"]["parameters_json_schema"]["$defs"]["Brief"]["properties"]
    copy_brief = declared["content_execution"]["parameters_json_schema"]["$defs"]["ContentBrief"]["properties"]
    for field in (campaign_brief["language"], copy_brief["language"],
                  declared["validate_content"]["parameters_json_schema"]["properties"]["language"]):
        assert field["description"] and '"ta"' in json.dumps(field), field
    assert "channel_languages" in campaign_brief
