"""The tool belt's execution layer: validation, timeouts, bounded retries, cost, latency, typed errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from google.genai import types
from pydantic import BaseModel, Field

from shared.errors import ConfigurationError, NotFound, UpstreamUnavailable
from shared.ports import Usage
from shared.tools import Costed, RetryPolicy, Tool, ToolBelt, ToolContext, ToolCost, ToolRun

CTX = ToolContext(workspace_id="ws-1", campaign_id="c-1", node="research")


class EchoIn(BaseModel):
    """Echo a word."""

    word: str = Field(min_length=1, max_length=10, description="The word to echo.")
    times: int = Field(1, ge=1, le=3)


class EchoOut(BaseModel):
    echoed: str


@dataclass
class Script:
    """A tool function that fails with the queued exceptions, then echoes."""

    failures: list[BaseException] = field(default_factory=list)
    calls: list[tuple[EchoIn, ToolContext]] = field(default_factory=list)

    def __call__(self, args: EchoIn, ctx: ToolContext) -> EchoOut:
        self.calls.append((args, ctx))
        if self.failures:
            raise self.failures.pop(0)
        return EchoOut(echoed=" ".join([args.word] * args.times))


@dataclass
class Ticker:
    """A timer advancing 10 ms per reading."""

    now: float = 0.0

    def __call__(self) -> float:
        self.now += 0.01
        return self.now


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of a test so abandoned (timed-out) tool threads finish."""
    event = threading.Event()
    yield event
    event.set()


def _belt(*tools: Tool[Any, Any], sleeps: list[float] | None = None,
          runs: list[ToolRun] | None = None) -> ToolBelt:
    return ToolBelt(tools, timer=Ticker(), sleep=(sleeps if sleeps is not None else []).append,
                    recorder=(runs if runs is not None else []).append)


def _echo(fn: Any, **kwargs: Any) -> Tool[EchoIn, EchoOut]:
    return Tool("echo", "Echo a word back.", EchoIn, EchoOut, fn, **kwargs)


def test_the_function_declaration_is_generated_from_the_input_model() -> None:
    declaration = _echo(Script()).declaration()

    assert isinstance(declaration, types.FunctionDeclaration)
    assert (declaration.name, declaration.description) == ("echo", "Echo a word back.")
    schema = declaration.parameters_json_schema
    assert schema == EchoIn.model_json_schema()
    assert schema["required"] == ["word"] and schema["properties"]["word"]["maxLength"] == 10
    tool = _belt(_echo(Script())).gemini_tool()
    assert isinstance(tool, types.Tool) and [d.name for d in tool.function_declarations or []] == ["echo"]


def test_a_tool_is_declared_once_with_a_gemini_compatible_name() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        ToolBelt([_echo(Script()), _echo(Script())])
    with pytest.raises(ValueError, match="tool name 'web-search' must match"):
        Tool("web-search", "d", EchoIn, EchoOut, Script())


def test_invalid_arguments_become_a_typed_error_without_running_the_tool() -> None:
    fn = Script()
    run = _belt(_echo(fn)).run("echo", {"word": "far-too-long-word", "times": 9}, CTX)

    assert not run.ok and run.output is None and run.attempts == 0 and fn.calls == []
    assert run.error is not None and run.error.code == "invalid_arguments" and not run.error.retryable
    assert "word: String should have at most 10 characters (got 'far-too-long-word')" in run.error.message
    assert "times: Input should be less than or equal to 3 (got 9)" in run.error.message
    assert run.response() == {"error": run.error.model_dump()}


def test_an_unknown_or_withheld_tool_is_a_typed_error_naming_what_is_available() -> None:
    belt = _belt(_echo(Script()))
    unknown = belt.run("send_email", {}, CTX)
    withheld = belt.run("echo", {"word": "hi"}, CTX, allowed=())

    assert unknown.error is not None and unknown.error.code == "unknown_tool"
    assert "call one of: echo" in unknown.error.message
    assert withheld.error is not None and withheld.error.code == "unknown_tool"


def test_success_records_output_attempts_latency_and_flat_credits() -> None:
    runs: list[ToolRun] = []
    fn = Script()
    run = _belt(_echo(fn, credits_per_call=1.0), runs=runs).run("echo", {"word": "diya", "times": 2}, CTX)

    assert run.ok and run.output == EchoOut(echoed="diya diya") and run.attempts == 1
    assert run.latency_ms == pytest.approx(10.0)
    assert run.cost == ToolCost(credits=1.0)
    assert fn.calls[0][1] is CTX, "the context comes from the caller, never from the arguments"
    assert runs == [run]
    assert run.response() == {"output": {"echoed": "diya diya"}}
    assert run.as_dict()["cost"] == {"credits": 1.0, "usage": []}


def test_a_tool_may_report_its_own_cost() -> None:
    usage = Usage(model="gemini-2.5-flash", prompt_tokens=12, output_tokens=30)
    tool = _echo(lambda args, ctx: Costed(output=EchoOut(echoed=args.word), cost=ToolCost(usage=(usage,))))
    run = _belt(tool).run("echo", {"word": "x"}, CTX)
    assert run.cost.usage == (usage,) and run.cost.credits == 0


def test_a_timeout_is_a_retryable_typed_error_after_bounded_attempts(release: threading.Event) -> None:
    sleeps: list[float] = []
    calls: list[int] = []

    def hang(args: EchoIn, ctx: ToolContext) -> EchoOut:
        calls.append(1)
        release.wait(5)
        return EchoOut(echoed="late")

    tool = _echo(hang, timeout_seconds=0.05, retry=RetryPolicy(max_attempts=2, backoff_seconds=0.1))
    run = _belt(tool, sleeps=sleeps).run("echo", {"word": "x"}, CTX)

    assert run.error is not None and run.error.code == "timeout" and run.error.retryable
    assert "did not finish within 0.05s (attempt 2 of 2)" in run.error.message
    assert run.attempts == 2 and len(calls) == 2 and sleeps == [0.1]


def test_retryable_failures_are_retried_with_backoff_and_bounded() -> None:
    sleeps: list[float] = []
    flaky = Script(failures=[UpstreamUnavailable("Tavily answered 502")] * 5)
    tool = _echo(flaky, retry=RetryPolicy(max_attempts=3, backoff_seconds=0.2, multiplier=3))

    run = _belt(tool, sleeps=sleeps).run("echo", {"word": "x"}, CTX)

    assert run.error is not None and run.error.code == "upstream_unavailable" and run.error.retryable
    assert run.attempts == 3 and len(flaky.calls) == 3
    assert sleeps == pytest.approx([0.2, 0.6])

    recovers = Script(failures=[UpstreamUnavailable("blip")])
    ok = _belt(_echo(recovers, retry=RetryPolicy(max_attempts=3))).run("echo", {"word": "x"}, CTX)
    assert ok.ok and ok.attempts == 2


@pytest.mark.parametrize(("failure", "code"), [
    (NotFound("document 'kb:1' does not exist"), "not_found"),
    (ConfigurationError("check TAVILY_API_KEY"), "configuration_error"),
    (KeyError("boom"), "internal_error"),
])
def test_non_retryable_failures_are_not_retried(failure: BaseException, code: str) -> None:
    fn = Script(failures=[failure])
    run = _belt(_echo(fn, retry=RetryPolicy(max_attempts=3))).run("echo", {"word": "x"}, CTX)
    assert run.error is not None and (run.error.code, run.error.retryable, run.attempts) == (code, False, 1)
    assert len(fn.calls) == 1


def test_output_that_breaks_the_output_model_is_a_typed_error() -> None:
    run = _belt(_echo(lambda args, ctx: {"unexpected": True})).run("echo", {"word": "x"}, CTX)
    assert run.error is not None and run.error.code == "invalid_output"
    assert "does not match EchoOut" in run.error.message


def test_retry_policy_bounds_are_enforced() -> None:
    with pytest.raises(ValueError, match="max_attempts must be between 1 and 5, got 9"):
        RetryPolicy(max_attempts=9)
