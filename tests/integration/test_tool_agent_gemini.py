"""The agent loop: Gemini (the emulator, through google-genai) calls the tool belt by function calling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from infra.local.serve import RunningServer
from shared.integrations.gemini import GeminiBackend, model_router
from shared.models import CircuitBreakers, FakeClock, ModelRouter
from shared.testing.fakes import CannedSearch, ScriptedModel
from shared.tools import ToolAgent, ToolBelt, ToolContext, ToolDeps, ToolRun, standard_belt
from shared.tools.ports import KnowledgeDocument
from tests.integration.test_model_fallback_gemini import settings_for

FLASH, LITE = "gemini-2.5-flash", "gemini-2.5-flash-lite"
CTX = ToolContext(workspace_id="ws-1", campaign_id="c-1", node="content")


class NoDocuments:
    def fetch(self, workspace_id: str, document_id: str) -> KnowledgeDocument | None:
        return None


@pytest.fixture
def router(gemini_server: RunningServer) -> Iterator[ModelRouter]:
    built = model_router(settings_for(gemini_server.url), breakers=CircuitBreakers(clock=FakeClock()))
    try:
        yield built
    finally:
        built.backend.client.close()  # type: ignore[attr-defined]


@pytest.fixture
def runs() -> list[ToolRun]:
    return []


@pytest.fixture
def belt(runs: list[ToolRun]) -> ToolBelt:
    search = CannedSearch()
    deps = ToolDeps(web=search, knowledge=search, documents=NoDocuments(), model=ScriptedModel())
    return standard_belt(deps, recorder=runs.append)


def agent(router: ModelRouter, belt: ToolBelt, max_turns: int = 4) -> ToolAgent:
    return ToolAgent(gemini=router.backend, router=router, belt=belt, max_turns=max_turns)  # type: ignore[arg-type]


def script(gemini_http: httpx.Client, *rules: dict[str, Any]) -> None:
    gemini_http.post("/_emulator/script", json={"rules": list(rules)}).raise_for_status()


def bodies(gemini_http: httpx.Client) -> list[dict[str, Any]]:
    return [r["body"] for r in gemini_http.get("/_emulator/requests").json()]


def test_the_model_calls_tools_through_the_belt_and_answers_with_their_results(
        router: ModelRouter, belt: ToolBelt, runs: list[ToolRun], gemini_http: httpx.Client) -> None:
    long_post = "x" * 300
    script(gemini_http,
           {"times": 1, "response": {"function_calls": [
               {"name": "fetch_canon", "args": {"content_type": "x_thread"}},
               {"name": "validate_content", "args": {"channel": "x_thread", "content": {"posts": [long_post]}}}]}},
           {"times": 1, "response": {"text": "The post is 20 characters over; shorten it."}})

    result = agent(router, belt).run(tier="fast", system="You check copy.", prompt="Check my thread", context=CTX,
                                     tools=["fetch_canon", "validate_content"])

    assert (result.stopped, result.turns, result.text) == ("answered", 2, "The post is 20 characters over; shorten it.")
    assert [r.tool for r in result.tool_runs] == ["fetch_canon", "validate_content"] == [r.tool for r in runs]
    assert all(r.ok for r in result.tool_runs)
    assert result.tool_runs[1].response()["output"]["valid"] is False
    first, second = bodies(gemini_http)
    declared = [d["name"] for d in first["tools"][0]["functionDeclarations"]]
    assert declared == ["fetch_canon", "validate_content"]
    responses = [p["functionResponse"] for p in second["contents"][2]["parts"]]
    assert [r["name"] for r in responses] == ["fetch_canon", "validate_content"]
    assert responses[1]["response"]["output"]["issues"][0]["rule"] == "max_length"
    assert second["contents"][1]["parts"][0]["functionCall"]["name"] == "fetch_canon"
    assert len(result.usage) == 2 and all(u.model == FLASH and u.prompt_tokens > 0 for u in result.usage)
    assert [e["node"] for e in result.usage_entries("content")] == ["content", "content"]


def test_a_tool_failure_goes_back_to_the_model_as_a_typed_error(router: ModelRouter, belt: ToolBelt,
                                                                gemini_http: httpx.Client) -> None:
    script(gemini_http,
           {"times": 1, "response": {"function_calls": [
               {"name": "web_search", "args": {"query": "x" * 500}},
               {"name": "knowledge_fetch", "args": {"source_id": "kb:6f1c2a4e-9b7d-4c3e-8a5f-0123456789ab"}}]}},
           {"times": 1, "response": {"text": "I could not research this."}})

    result = agent(router, belt).run(tier="fast", system="Research.", prompt="Research Diwali", context=CTX)

    assert result.stopped == "answered"
    codes = [r.error.code if r.error else None for r in result.tool_runs]
    assert codes == ["invalid_arguments", "not_found"]
    errors = [p["functionResponse"]["response"]["error"] for p in bodies(gemini_http)[1]["contents"][2]["parts"]]
    assert errors[0]["code"] == "invalid_arguments" and errors[0]["retryable"] is False
    assert "query: String should have at most 400 characters" in errors[0]["message"]


def test_the_loop_is_bounded_and_the_last_turn_switches_function_calling_off(router: ModelRouter, belt: ToolBelt,
                                                                             gemini_http: httpx.Client) -> None:
    script(gemini_http, {"response": {"function_calls": [{"name": "fetch_canon", "args": {"content_type": "ad"}}]}})

    result = agent(router, belt, max_turns=2).run(tier="fast", system="s", prompt="Loop forever", context=CTX)

    assert (result.stopped, result.turns, len(result.tool_runs)) == ("answered", 2, 1)
    assert result.text.startswith(f"[emulated {FLASH}]"), "with calling off, the model has to answer"
    modes = [b["toolConfig"]["functionCallingConfig"]["mode"] for b in bodies(gemini_http)]
    assert modes == ["AUTO", "NONE"]

    one_turn = agent(router, belt, max_turns=1).run(tier="fast", system="s", prompt="Loop", context=CTX)
    assert (one_turn.stopped, one_turn.tool_runs) == ("answered", ())


def test_a_tool_the_turn_does_not_offer_is_refused(router: ModelRouter, belt: ToolBelt,
                                                   gemini_http: httpx.Client) -> None:
    script(gemini_http,
           {"times": 1, "response": {"function_calls": [{"name": "fetch_canon", "args": {"content_type": "ad"}}]}},
           {"times": 1, "response": {"text": "done"}})

    result = agent(router, belt).run(tier="fast", system="s", prompt="p", context=CTX, tools=["fetch_canon"])
    assert result.tool_runs[0].ok

    run = belt.run("content_execution", {}, CTX, allowed=["fetch_canon"])
    assert run.error is not None and run.error.code == "unknown_tool"


def test_each_turn_is_routed_through_the_fallback_cascade(router: ModelRouter, belt: ToolBelt,
                                                          gemini_http: httpx.Client) -> None:
    script(gemini_http,
           {"times": 1, "match": {"model": FLASH}, "status": 503},
           {"times": 1, "response": {"text": "answer from the fallback"}})

    result = agent(router, belt).run(tier="fast", system="s", prompt="p", context=CTX)

    assert result.text == "answer from the fallback"
    [route] = result.routes
    assert route.model == LITE and [a.outcome for a in route.attempts] == ["server_error", "ok"]
    assert result.usage[0].model == LITE


def test_the_agent_uses_the_gemini_backend(router: ModelRouter) -> None:
    assert isinstance(router.backend, GeminiBackend)
