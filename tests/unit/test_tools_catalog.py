"""The six standard tools over fake ports, and the canon they write and validate by."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from shared.campaigns.schemas import CHANNEL_SCHEMAS
from shared.errors import UpstreamUnavailable
from shared.ports import Finding
from shared.testing.fakes import DEFAULTS, CannedSearch, ScriptedModel
from shared.tools import (
    KnowledgeDocument,
    ToolBelt,
    ToolContext,
    ToolDeps,
    load_canon,
    standard_belt,
    standard_tools,
    validate_channel_content,
)
from shared.tools.canon import CANON_PATH, parse_canon
from shared.writing.prompting import language_instruction

CTX = ToolContext(workspace_id="ws-1", campaign_id="c-1", node="content")
DOC_ID = "6f1c2a4e-9b7d-4c3e-8a5f-0123456789ab"
BRIEF = {"objective": "Sell Diwali gift boxes", "audience": "Urban gifters, 25-40",
         "key_messages": ["Single-origin teas from 40 growers"], "tone": ["warm"],
         "call_to_action": "Shop the box", "must_include": ["T&C apply"], "avoid": ["cheap"],
         "facts": ["Box of four teas, INR 1,499 (brief)"]}


@dataclass
class Knowledge:
    """`KnowledgeSearch` and `KnowledgeFetch` over one document of one workspace."""

    searched: list[str] = field(default_factory=list)

    def search(self, workspace_id: str, query: str, *, k: int = 5) -> list[Finding]:
        self.searched.append(workspace_id)
        return [Finding(source_id=f"kb:{DOC_ID}:0", title="Gift box", content="Four teas. " * 400)][:k]

    def fetch(self, workspace_id: str, document_id: str) -> KnowledgeDocument | None:
        if workspace_id != "ws-1" or document_id != DOC_ID:
            return None
        return KnowledgeDocument(document_id=DOC_ID, title="Gift box", content="Four teas. " * 1000, tags=("product",))


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def knowledge() -> Knowledge:
    return Knowledge()


@pytest.fixture
def belt(model: ScriptedModel, knowledge: Knowledge) -> ToolBelt:
    return standard_belt(ToolDeps(web=CannedSearch(), knowledge=knowledge, documents=knowledge, model=model))


def test_the_belt_declares_the_six_tools_for_gemini(belt: ToolBelt) -> None:
    assert belt.names == ("web_search", "knowledge_search", "knowledge_fetch", "fetch_canon", "content_execution",
                          "validate_content")
    for declaration in belt.declarations():
        assert declaration.description and declaration.parameters_json_schema["type"] == "object"
        json.dumps(declaration.parameters_json_schema)
    canon_params = belt.get("fetch_canon").declaration().parameters_json_schema
    assert "landing_page" in json.dumps(canon_params)


def test_web_search_costs_a_tavily_credit(belt: ToolBelt) -> None:
    run = belt.run("web_search", {"query": "diwali gifting trends", "max_results": 3}, CTX)
    assert run.ok and run.cost.credits == 1.0
    assert run.response()["output"]["results"][0]["source_id"] == "web:1"


def test_web_search_failures_are_retried_then_reported(model: ScriptedModel, knowledge: Knowledge) -> None:
    class Down:
        calls = 0

        def search(self, query: str, *, max_results: int = 5) -> list[Finding]:
            Down.calls += 1
            raise UpstreamUnavailable(f"Tavily search for {query!r} failed: 502")

    belt = ToolBelt(standard_tools(ToolDeps(web=Down(), knowledge=knowledge, documents=knowledge, model=model)),
                    sleep=lambda seconds: None)
    run = belt.run("web_search", {"query": "diwali"}, CTX)
    assert run.error is not None and run.error.code == "upstream_unavailable" and run.attempts == 2 == Down.calls


def test_knowledge_tools_are_scoped_to_the_callers_workspace(belt: ToolBelt, knowledge: Knowledge) -> None:
    found = belt.run("knowledge_search", {"query": "gift box", "k": 2}, CTX)
    assert found.ok and knowledge.searched == ["ws-1"]
    assert len(found.response()["output"]["results"][0]["content"]) == 1500

    source_id = found.response()["output"]["results"][0]["source_id"]
    document = belt.run("knowledge_fetch", {"source_id": source_id, "max_chars": 500}, CTX)
    assert document.ok and document.output is not None
    assert document.output.model_dump()["truncated"] is True and len(document.output.model_dump()["content"]) == 500

    elsewhere = belt.run("knowledge_fetch", {"source_id": source_id}, ToolContext(workspace_id="ws-2"))
    assert elsewhere.error is not None and elsewhere.error.code == "not_found"
    assert "use a source_id returned by knowledge_search" in elsewhere.error.message
    malformed = belt.run("knowledge_fetch", {"source_id": "web:abc"}, CTX)
    assert malformed.error is not None and malformed.error.code == "invalid_arguments"


def test_fetch_canon_returns_the_versioned_canon_with_the_channel_limits(belt: ToolBelt) -> None:
    run = belt.run("fetch_canon", {"content_type": "x_thread"}, CTX)
    canon = run.response()["output"]
    assert canon["version"] == load_canon().version and canon["version"].startswith("2026.11.1+")
    [posts] = canon["fields"]
    assert (posts["name"], posts["item_max_length"], posts["max_items"]) == ("posts", 280, 8)
    assert belt.run("fetch_canon", {"content_type": "press_release"}, CTX).error.code == "invalid_arguments"


def test_the_canon_covers_every_content_type_and_agrees_with_the_channel_schemas() -> None:
    canon = load_canon()
    assert set(canon.entries) == {"email", "ad", "landing_page", "video_script", "x_thread", "linkedin_post",
                                  "instagram_caption"}
    for channel, schema in CHANNEL_SCHEMAS.items():
        entry = canon.get(channel)
        assert {f.name for f in entry.fields} == set(schema.model_fields), channel
        for spec in entry.fields:
            prop = schema.model_json_schema()["properties"][spec.name]
            assert spec.max_length == prop.get("maxLength"), (channel, spec.name)
    assert canon.get("email").field("subject").max_length == 60
    assert load_canon() is canon, "cached per process"
    assert canon.fetch("ad")["framework"] == "PAS" and canon.fetch("ad")["version"] == canon.version
    assert canon.fetch("press_release") == {}


def test_the_canon_version_changes_with_its_content_and_bad_fields_are_named() -> None:
    raw = CANON_PATH.read_bytes()
    edited = raw.replace(b"Verb first", b"Start with a verb")
    assert parse_canon(edited).version != parse_canon(raw).version
    data = json.loads(raw)
    data["content_types"]["ad"]["fields"].append({"name": "image_text", "guidance": "g"})
    with pytest.raises(ValueError, match="canon field ad.image_text is not in the ad schema"):
        parse_canon(json.dumps(data).encode())


def test_content_execution_writes_from_the_brief_and_canon_alone(belt: ToolBelt, model: ScriptedModel) -> None:
    run = belt.run("content_execution", {"channel": "email", "brief": BRIEF}, CTX)

    assert run.ok and run.output is not None
    out = run.output.model_dump()
    assert out["content"] == DEFAULTS[CHANNEL_SCHEMAS["email"]] and out["model"] == "scripted-fast"
    assert out["canon_version"] == load_canon().version
    [(tier, schema, prompt)] = model.calls
    assert (tier, schema) == ("fast", "EmailCopy")
    assert "Sell Diwali gift boxes" in prompt and "T&C apply" in prompt and "AIDA" in prompt
    assert "ws-1" not in prompt and "c-1" not in prompt, "the executor is stateless: brief and canon only"
    assert run.cost.usage and run.cost.usage[0].model == "scripted-fast"


def test_content_execution_rejects_an_incomplete_brief(belt: ToolBelt) -> None:
    run = belt.run("content_execution", {"channel": "email", "brief": {"objective": "x"}}, CTX)
    assert run.error is not None and run.error.code == "invalid_arguments"
    assert "brief.audience: Field required" in run.error.message


@pytest.mark.parametrize("channel", sorted(CHANNEL_SCHEMAS))
def test_the_default_copy_of_every_channel_validates_clean(belt: ToolBelt, channel: str) -> None:
    run = belt.run("validate_content", {"channel": channel, "content": DEFAULTS[CHANNEL_SCHEMAS[channel]]}, CTX)
    assert run.ok and run.output is not None
    assert run.output.model_dump()["valid"] is True and run.output.model_dump()["issues"] == []


@pytest.mark.parametrize(("channel", "content", "field", "rule"), [
    ("x_thread", {"posts": ["ok", "x" * 281]}, "posts[1]", "max_length"),
    ("x_thread", {"posts": []}, "posts", "min_items"),
    ("x_thread", {"posts": ["a"] * 9}, "posts", "max_items"),
    ("ad", {"headline": "h" * 91, "description": "d"}, "headline", "max_length"),
    ("ad", {"headline": "h"}, "description", "required"),
    ("email", {"subject": "s", "preheader": "p", "body": "b", "cta": "   "}, "cta", "empty"),
    ("instagram_caption", {"caption": "c", "hashtags": ["#diwali", "gift box"]}, "hashtags[1]", "hashtag_format"),
    ("linkedin_post", {"text": "t", "image": "x"}, "image", "unknown_field"),
])
def test_channel_limit_violations_are_errors_that_say_how_to_fix_them(
        channel: str, content: dict[str, Any], field: str, rule: str) -> None:
    issues = validate_channel_content(channel, content, load_canon())
    assert any((i.field, i.rule, i.severity) == (field, rule, "error") for i in issues), issues


def test_canon_soft_limits_are_warnings_that_leave_the_copy_valid(belt: ToolBelt) -> None:
    content = {"subject": "A subject line that runs a little past fifty chars!!!",
               "preheader": "p", "body": "b", "cta": "Shop"}
    run = belt.run("validate_content", {"channel": "email", "content": content}, CTX)
    out = run.output.model_dump()
    assert out["valid"] is True
    [issue] = out["issues"]
    assert (issue["field"], issue["rule"], issue["severity"]) == ("subject", "recommended_length", "warning")
    over = validate_channel_content("x_thread", {"posts": ["x" * 300]}, load_canon())
    assert [(i.rule, i.severity) for i in over] == [("max_length", "error")], "no warning on top of the error"
    assert "the x_thread limit is 280, shorten it by 20" in over[0].message


def test_content_execution_writes_in_the_briefs_language_as_the_campaign_writers_are_told(
        belt: ToolBelt, model: ScriptedModel) -> None:
    run = belt.run("content_execution", {"channel": "email", "brief": {**BRIEF, "language": "ta"}}, CTX)
    assert run.ok and run.output is not None and run.output.model_dump()["language"] == "ta"
    [(_, _, prompt)] = model.calls
    assert language_instruction("ta") in prompt and "Write in: Tamil (ta), Tamil script." in prompt
    english = belt.run("content_execution", {"channel": "email", "brief": BRIEF}, CTX)
    assert english.output is not None and english.output.model_dump()["language"] == "en"
    assert "Write in: English (en), Latin script." in model.calls[-1][2]


def test_content_execution_refuses_a_language_the_gate_cannot_check(belt: ToolBelt, model: ScriptedModel) -> None:
    run = belt.run("content_execution", {"channel": "email", "brief": {**BRIEF, "language": "fr"}}, CTX)
    assert run.error is not None and run.error.code == "invalid_arguments"
    assert "brief.language" in run.error.message and model.calls == []


def test_validate_content_checks_the_script_of_the_language_it_names(belt: ToolBelt) -> None:
    english = {"subject": "Tea for the festive season", "preheader": "Gift boxes for the people you love",
               "body": "Share a cup with your family this festive season.", "cta": "Order now"}
    as_english = belt.run("validate_content", {"channel": "email", "content": english}, CTX).output
    assert as_english is not None and as_english.model_dump()["valid"] is True
    as_hindi = belt.run("validate_content", {"channel": "email", "content": english, "language": "hi"}, CTX).output
    assert as_hindi is not None
    out = as_hindi.model_dump()
    assert out["valid"] is False and out["language"] == "hi"
    assert {(i["field"], i["rule"], i["severity"]) for i in out["issues"]} >= {
        ("subject", "script", "error"), ("body", "script", "error")}
    assert any("Devanagari" in i["message"] for i in out["issues"])


def test_the_declarations_document_the_language_field(belt: ToolBelt) -> None:
    brief = belt.get("content_execution").declaration().parameters_json_schema["$defs"]["ContentBrief"]
    validate = belt.get("validate_content").declaration().parameters_json_schema
    for schema in (brief["properties"]["language"], validate["properties"]["language"]):
        text = json.dumps(schema)
        assert '"ta"' in text and '"ur"' in text and '"fr"' not in text
        assert "brand kit's primary language" in schema["description"]
