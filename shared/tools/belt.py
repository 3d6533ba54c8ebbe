"""One execution layer for every tool an agent may call.

A `Tool` is declared once: a name, a description, pydantic input and output models and a function.
From that one declaration the belt derives the Gemini `FunctionDeclaration`, validates arguments,
runs the function under a timeout with bounded retries (only for retryable failures), measures
latency, records cost, and turns every failure into a `ToolError` with a code the agent can react
to. `ToolBelt.run` never raises for a tool's failure: the agent loop always gets a `ToolRun`.
"""

from __future__ import annotations

import contextvars
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.errors import BudgetExceeded, ConfigurationError, InvalidRequest, MuseError, NotFound
from shared.lazy import lazy_module
from shared.models.spend import Hold, SpendGate, current_budget
from shared.ports import Usage
from shared.tracing import span

if TYPE_CHECKING:
    from google.genai import types
else:
    types = lazy_module("google.genai.types")

InT = TypeVar("InT", bound=BaseModel)
OutT = TypeVar("OutT", bound=BaseModel)

ToolErrorCode = Literal[
    "unknown_tool", "invalid_arguments", "timeout", "upstream_unavailable", "not_found", "invalid_output",
    "configuration_error", "internal_error",
]
_TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
RETRIEVERS = frozenset({"web_search", "knowledge_search"})
"""Tools traced as LangSmith `retriever` runs; every other tool is a `tool` run."""


class ToolError(BaseModel):
    """Why a tool call failed, in a form the model can read and act on."""

    model_config = ConfigDict(frozen=True)

    code: ToolErrorCode
    message: str
    retryable: bool
    """Whether calling again with the same arguments may succeed."""


@dataclass(frozen=True)
class ToolContext:
    """Who a tool runs for; never taken from model-supplied arguments."""

    workspace_id: str
    campaign_id: str | None = None
    node: str | None = None


@dataclass(frozen=True)
class ToolCost:
    """What one tool run cost: vendor credits (e.g. Tavily searches) and model tokens."""

    credits: float = 0.0
    usage: tuple[Usage, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON form for steps and events."""
        return {"credits": self.credits, "usage": [u.as_dict() for u in self.usage]}


@dataclass(frozen=True)
class Costed(Generic[OutT]):
    """A tool's output with the cost it reports itself (a tool returning a bare output costs its flat credits)."""

    output: OutT
    cost: ToolCost


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential back-off, for retryable failures only."""

    max_attempts: int = 2
    backoff_seconds: float = 0.25
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 5:
            raise ValueError(f"max_attempts must be between 1 and 5, got {self.max_attempts}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return self.backoff_seconds * self.multiplier ** (attempt - 1)


@dataclass(frozen=True)
class Tool(Generic[InT, OutT]):
    """One tool, declared once."""

    name: str
    description: str
    input_model: type[InT]
    output_model: type[OutT]
    run: Callable[[InT, ToolContext], OutT | Costed[OutT]]
    timeout_seconds: float = 15.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    credits_per_call: float = 0.0
    """Flat vendor credits of one successful call, when the function does not report a `Costed`."""
    vendor: str = "tavily"
    """Who bills `credits_per_call` (a `tools` key of the price table); unused for tools that cost nothing."""

    def __post_init__(self) -> None:
        if not _TOOL_NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r} must match {_TOOL_NAME.pattern} (Gemini function names)")
        if self.timeout_seconds <= 0:
            raise ValueError(f"tool {self.name!r}: timeout_seconds must be positive, got {self.timeout_seconds}")

    def declaration(self) -> types.FunctionDeclaration:
        """The Gemini function declaration, its parameters generated from `input_model`."""
        return types.FunctionDeclaration(
            name=self.name,
            description=self.description,
            parameters_json_schema=self.input_model.model_json_schema(),
        )


@dataclass(frozen=True)
class ToolRun:
    """The outcome of one tool call: an output or a `ToolError`, with attempts, latency and cost."""

    tool: str
    arguments: Mapping[str, Any]
    output: BaseModel | None
    error: ToolError | None
    attempts: int
    latency_ms: float
    cost: ToolCost = field(default_factory=ToolCost)

    @property
    def ok(self) -> bool:
        """Whether the tool produced a valid output."""
        return self.error is None

    def response(self) -> dict[str, Any]:
        """The `FunctionResponse.response` for Gemini: `{"output": ...}` or `{"error": ...}`."""
        if self.output is not None:
            return {"output": self.output.model_dump(mode="json")}
        assert self.error is not None
        return {"error": self.error.model_dump(mode="json")}

    def as_dict(self) -> dict[str, Any]:
        """JSON form recorded on the step (the output itself is left to the caller)."""
        return {"tool": self.tool, "ok": self.ok, "attempts": self.attempts, "latency_ms": round(self.latency_ms, 1),
                "cost": self.cost.as_dict(), "error": self.error.model_dump() if self.error else None}


class _Timeout(Exception):
    pass


def _call_with_timeout(fn: Callable[[], Any], timeout_seconds: float, name: str) -> Any:
    """Run `fn` in a daemon thread (with the caller's context variables) and wait at most `timeout_seconds`.

    A timed-out call is abandoned, not killed: the tools' own clients carry network timeouts too.
    """
    box: dict[str, Any] = {}
    done = threading.Event()
    context = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = context.run(fn)
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name=f"tool-{name}", daemon=True).start()
    if not done.wait(timeout_seconds):
        raise _Timeout
    if "error" in box:
        raise box["error"]
    return box["value"]


def _classify(name: str, exc: BaseException) -> ToolError:
    detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(exc, NotFound):
        return ToolError(code="not_found", message=detail, retryable=False)
    if isinstance(exc, InvalidRequest):
        return ToolError(code="invalid_arguments", message=detail, retryable=False)
    if isinstance(exc, ConfigurationError):
        return ToolError(code="configuration_error", message=detail, retryable=False)
    if isinstance(exc, MuseError) and exc.retryable:
        return ToolError(code="upstream_unavailable", message=detail, retryable=True)
    if isinstance(exc, TimeoutError):
        return ToolError(code="timeout", message=f"{name}: {detail}", retryable=True)
    return ToolError(code="internal_error", message=f"{name} failed: {type(exc).__name__}: {detail}",
                     retryable=False)


def _argument_problems(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "arguments"
        problems.append(f"{where}: {error['msg']} (got {error.get('input')!r:.80})")
    return "; ".join(problems)


class ToolBelt:
    """The tools an agent may use, behind one validating, timing, retrying, costing execution layer."""

    def __init__(self, tools: Iterable[Tool[Any, Any]], *, timer: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep,
                 recorder: Callable[[ToolRun], None] | None = None) -> None:
        self._tools: dict[str, Tool[Any, Any]] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"tool {tool.name!r} is declared twice; every tool is declared once")
            self._tools[tool.name] = tool
        self._timer = timer
        self._sleep = sleep
        self._recorder = recorder
        self._budget: SpendGate | None = None

    def with_budget(self, budget: SpendGate | None) -> ToolBelt:
        """This belt with each paid call (`credits_per_call` > 0) reserved against `budget` before it runs.

        A cap that would be passed raises `BudgetExceeded` (never a `ToolError`: the campaign must pause).
        """
        belt = ToolBelt(self._tools.values(), timer=self._timer, sleep=self._sleep, recorder=self._recorder)
        belt._budget = budget
        return belt

    @property
    def names(self) -> tuple[str, ...]:
        """Every tool's name, in declaration order."""
        return tuple(self._tools)

    def get(self, name: str) -> Tool[Any, Any]:
        """The tool called `name`; KeyError lists the known ones."""
        try:
            return self._tools[name]
        except KeyError:
            raise KeyError(f"no tool named {name!r}; known: {', '.join(self._tools)}") from None

    def declarations(self, names: Collection[str] | None = None) -> list[types.FunctionDeclaration]:
        """Function declarations of the named tools (all when None)."""
        return [self.get(name).declaration() for name in (names if names is not None else self._tools)]

    def gemini_tool(self, names: Collection[str] | None = None) -> types.Tool:
        """A `types.Tool` carrying the declarations, for `GenerateContentConfig.tools`."""
        return types.Tool(function_declarations=self.declarations(names))

    def run(self, name: str, arguments: Mapping[str, Any] | None, context: ToolContext, *,
            allowed: Collection[str] | None = None) -> ToolRun:
        """Validate `arguments`, run tool `name` with timeout and retries, and report how it went.

        When a step or turn is traced, the call is a `tool` run (a `retriever` run for the searches).
        """
        with span(name, "retriever" if name in RETRIEVERS else "tool", dict(arguments or {})) as traced:
            run = self._run(name, arguments, context, allowed)
            traced.record(lambda: ({**run.response(), **run.as_dict()}, None))
            return run

    def _run(self, name: str, arguments: Mapping[str, Any] | None, context: ToolContext,
             allowed: Collection[str] | None) -> ToolRun:
        started = self._timer()
        args = dict(arguments or {})
        tool = self._tools.get(name)
        if tool is None or (allowed is not None and name not in allowed):
            offered = [n for n in self._tools if allowed is None or n in allowed]
            error = ToolError(code="unknown_tool", retryable=False,
                              message=f"no tool named {name!r} is available; call one of: {', '.join(offered)}")
            return self._finish(ToolRun(name, args, None, error, 0, self._elapsed(started)))
        try:
            parsed = tool.input_model.model_validate(args)
        except ValidationError as exc:
            error = ToolError(code="invalid_arguments", retryable=False,
                              message=f"{name} arguments are invalid: {_argument_problems(exc)}")
            return self._finish(ToolRun(name, args, None, error, 0, self._elapsed(started)))

        hold = self._reserve(tool, context)
        try:
            run = self._attempts(tool, args, parsed, context, started)
        except BaseException:
            if hold is not None:
                hold.cancel()
            raise
        if hold is not None:
            hold.settle_tool(credits=run.cost.credits, cached=run.ok and run.cost.credits == 0)
        return self._finish(run)

    def _reserve(self, tool: Tool[Any, Any], context: ToolContext) -> Hold | None:
        budget = self._budget if self._budget is not None else current_budget()
        if budget is None or tool.credits_per_call <= 0:
            return None
        return budget.reserve_tool(tool=tool.name, vendor=tool.vendor, node=context.node,
                                         credits=tool.credits_per_call * tool.retry.max_attempts)

    def _attempts(self, tool: Tool[Any, Any], args: dict[str, Any], parsed: BaseModel, context: ToolContext,
                  started: float) -> ToolRun:
        name = tool.name
        attempt = 0
        while True:
            attempt += 1
            try:
                produced = _call_with_timeout(lambda: tool.run(parsed, context), tool.timeout_seconds, name)
            except _Timeout:
                error = ToolError(code="timeout", retryable=True,
                                  message=f"{name} did not finish within {tool.timeout_seconds:g}s "
                                          f"(attempt {attempt} of {tool.retry.max_attempts})")
            except BudgetExceeded:
                raise
            except Exception as exc:
                error = _classify(name, exc)
            else:
                return self._success(tool, args, produced, attempt, started)
            if not error.retryable or attempt >= tool.retry.max_attempts:
                return ToolRun(name, args, None, error, attempt, self._elapsed(started))
            self._sleep(tool.retry.delay(attempt))

    def _success(self, tool: Tool[Any, Any], args: dict[str, Any], produced: Any, attempts: int,
                 started: float) -> ToolRun:
        output, cost = (produced.output, produced.cost) if isinstance(produced, Costed) else (
            produced, ToolCost(credits=tool.credits_per_call))
        try:
            valid = tool.output_model.model_validate(output)
        except ValidationError as exc:
            error = ToolError(code="invalid_output", retryable=False,
                              message=f"{tool.name} produced output that does not match "
                                      f"{tool.output_model.__name__}: {exc.error_count()} error(s)")
            return ToolRun(tool.name, args, None, error, attempts, self._elapsed(started), cost)
        return ToolRun(tool.name, args, valid, None, attempts, self._elapsed(started), cost)

    def _elapsed(self, started: float) -> float:
        return (self._timer() - started) * 1000

    def _finish(self, run: ToolRun) -> ToolRun:
        if self._recorder is not None:
            self._recorder(run)
        return run
