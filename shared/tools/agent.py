"""A bounded agent loop: Gemini calls the belt's tools through the SDK's function calling.

Automatic function calling is off: every call the model asks for goes through `ToolBelt.run`
(validation, timeout, retries, cost), and its output or `ToolError` goes back to the model as the
function response, so the model can react to a failure instead of the loop crashing. Each turn is
routed through the model router's cascade like any other call. On the last allowed turn function
calling is switched off, so the model has to answer with what it has.

Which tools exist is the caller's choice (`tools`), never the model's: a call to a tool not offered is
refused by the belt, and who a tool runs for (`ToolContext`) never comes from the model's arguments.
Tool results come back as function responses, and the system instruction always carries the rule that
tool results are data (`shared.safety.untrusted.UNTRUSTED_RULE`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from shared.integrations.gemini import usage_of
from shared.lazy import lazy_module
from shared.models.router import ModelRouter
from shared.ports import ModelTier, Route, Usage
from shared.safety.untrusted import with_rule
from shared.tools.belt import ToolBelt, ToolContext, ToolRun

if TYPE_CHECKING:
    from google.genai import types
else:
    types = lazy_module("google.genai.types")


class ContentGenerator(Protocol):
    """One raw `generate_content` call to one model (`GeminiBackend` in production)."""

    def generate_content(self, *, model: str, contents: Any, config: types.GenerateContentConfig,
                         timeout_seconds: float) -> types.GenerateContentResponse:
        """The model's response; raises `ModelCallFailed` for failures worth a fallback."""
        ...


@dataclass(frozen=True)
class AgentResult:
    """How an agent run ended, with everything it did and spent."""

    text: str
    stopped: Literal["answered", "max_turns"]
    turns: int
    tool_runs: tuple[ToolRun, ...]
    usage: tuple[Usage, ...]
    routes: tuple[Route, ...]

    def usage_entries(self, node: str) -> list[dict[str, Any]]:
        """Graph-state usage entries: every model turn, then every token a tool spent."""
        entries = [{"node": node, **u.as_dict()} for u in self.usage]
        entries += [{"node": node, "tool": run.tool, **u.as_dict()} for run in self.tool_runs for u in run.cost.usage]
        return entries


@dataclass(frozen=True)
class ToolAgent:
    """Runs Gemini with the belt's tools until it answers or `max_turns` model calls are spent."""

    gemini: ContentGenerator
    router: ModelRouter
    belt: ToolBelt
    max_turns: int = 6
    temperature: float = 0.4

    def __post_init__(self) -> None:
        if not 1 <= self.max_turns <= 20:
            raise ValueError(f"max_turns must be between 1 and 20, got {self.max_turns}")

    def run(self, *, tier: ModelTier, system: str, prompt: str, context: ToolContext,
            tools: Collection[str] | None = None) -> AgentResult:
        """Let the model of `tier` use `tools` (all of the belt's when None) to answer `prompt`."""
        offered = tuple(tools) if tools is not None else self.belt.names
        contents: list[types.Content] = [types.Content(role="user", parts=[types.Part(text=prompt)])]
        runs: list[ToolRun] = []
        usage: list[Usage] = []
        routes: list[Route] = []
        for turn in range(1, self.max_turns + 1):
            config = self._config(system, offered, last=turn == self.max_turns)

            def attempt(model: str, timeout: float,
                        c: types.GenerateContentConfig = config) -> types.GenerateContentResponse:
                return self.gemini.generate_content(model=model, contents=contents, config=c, timeout_seconds=timeout)

            routed = self.router.invoke(tier, attempt)
            response = routed.value
            usage.append(usage_of(response, routed.route.model))
            routes.append(routed.route)
            calls = response.function_calls or []
            if not calls:
                return AgentResult(text=response.text or "", stopped="answered", turns=turn, tool_runs=tuple(runs),
                                   usage=tuple(usage), routes=tuple(routes))
            if turn == self.max_turns:
                break
            if response.candidates and response.candidates[0].content:
                contents.append(response.candidates[0].content)
            parts = []
            for call in calls:
                run = self.belt.run(call.name or "", call.args, context, allowed=offered)
                runs.append(run)
                parts.append(types.Part(function_response=types.FunctionResponse(
                    id=call.id, name=call.name, response=run.response())))
            contents.append(types.Content(role="user", parts=parts))
        return AgentResult(text="", stopped="max_turns", turns=self.max_turns, tool_runs=tuple(runs),
                           usage=tuple(usage), routes=tuple(routes))

    def _config(self, system: str, offered: tuple[str, ...], *, last: bool) -> types.GenerateContentConfig:
        mode = types.FunctionCallingConfigMode.NONE if last else types.FunctionCallingConfigMode.AUTO
        return types.GenerateContentConfig(
            system_instruction=with_rule(system),
            temperature=self.temperature,
            tools=[self.belt.gemini_tool(offered)],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode=mode)),
        )
