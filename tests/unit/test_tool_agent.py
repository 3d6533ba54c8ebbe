"""The agent loop's bounds, with a Gemini stand-in that never stops calling tools."""

from __future__ import annotations

from typing import Any

from google.genai import types

from shared.models import ModelRouter
from shared.testing.fakes import CannedSearch, ScriptedModel
from shared.tools import ToolAgent, ToolContext, ToolDeps, standard_belt
from tests.unit.test_model_routing import CASCADES, FakeBackend


class Insistent:
    """Answers every turn with a call to fetch_canon, whatever the tool config says."""

    def __init__(self) -> None:
        self.modes: list[Any] = []

    def generate_content(self, *, model: str, contents: Any, config: types.GenerateContentConfig,
                         timeout_seconds: float) -> types.GenerateContentResponse:
        assert config.tool_config and config.tool_config.function_calling_config
        self.modes.append(config.tool_config.function_calling_config.mode)
        call = types.FunctionCall(name="fetch_canon", args={"content_type": "email"})
        return types.GenerateContentResponse(
            candidates=[types.Candidate(content=types.Content(role="model", parts=[types.Part(function_call=call)]))],
            usage_metadata=types.GenerateContentResponseUsageMetadata(prompt_token_count=5, candidates_token_count=2))


def test_a_model_that_keeps_calling_tools_is_stopped_at_max_turns() -> None:
    gemini = Insistent()
    search = CannedSearch()
    deps = ToolDeps(web=search, knowledge=search, documents=None, model=ScriptedModel())  # type: ignore[arg-type]
    belt = standard_belt(deps)
    router = ModelRouter(backend=FakeBackend(), cascades=CASCADES)
    agent = ToolAgent(gemini=gemini, router=router, belt=belt, max_turns=3)

    result = agent.run(tier="fast", system="s", prompt="p", context=ToolContext(workspace_id="ws"))

    assert (result.stopped, result.turns, result.text) == ("max_turns", 3, "")
    assert len(result.tool_runs) == 2, "calls asked for on the last turn are not executed"
    mode = types.FunctionCallingConfigMode
    assert gemini.modes == [mode.AUTO, mode.AUTO, mode.NONE]
    assert [u.prompt_tokens for u in result.usage] == [5, 5, 5]
