"""The budget gate as the router and the tool belt use it: reserve before a paid call, settle what it cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel

from shared.errors import BudgetExceeded
from shared.models import ModelCallFailed, ModelRouter
from shared.models.spend import budget_scope
from shared.ports import Usage
from shared.tools.belt import Costed, Tool, ToolBelt, ToolContext, ToolCost


class Text(BaseModel):
    text: str


@dataclass
class LedgerGate:
    """A `SpendGate` in memory: refuses once `refuse_after` holds were taken; records how each one ended."""

    refuse_after: int = 100
    ended: list[tuple[str, Any]] = field(default_factory=list)
    taken: int = 0

    def _take(self, what: str) -> Hold:
        if self.taken >= self.refuse_after:
            raise BudgetExceeded(f"cap reached before {what}", retry_after_seconds=60, details={"scope": "campaign"})
        self.taken += 1
        return Hold(self, what)

    def reserve_model(self, model: str, *, prompt_chars: int | None = None) -> Hold:
        return self._take(model)

    def reserve_tool(self, *, tool: str, vendor: str, credits: float, node: str | None) -> Hold:
        return self._take(f"{vendor}:{tool}:{credits:g}")


@dataclass
class Hold:
    gate: LedgerGate
    what: str

    def settle_model(self, usage: Usage | None) -> None:
        self.gate.ended.append((self.what, usage.output_tokens if usage else None))

    def settle_tool(self, *, credits: float, cached: bool) -> None:
        self.gate.ended.append((self.what, (credits, cached)))

    def cancel(self) -> None:
        self.gate.ended.append((self.what, "cancelled"))


@dataclass
class Backend:
    failures: list[str] = field(default_factory=list)
    calls: int = 0

    def generate_once(self, *, model: str, system: str, prompt: str, schema: type[Any],
                      timeout_seconds: float) -> tuple[Any, Usage]:
        self.calls += 1
        if self.failures:
            raise ModelCallFailed("down", model=model, outcome=self.failures.pop(0))  # type: ignore[arg-type]
        return schema(text="ok"), Usage(model=model, prompt_tokens=10, output_tokens=5)


def _router(backend: Backend) -> ModelRouter:
    return ModelRouter(backend=backend, cascades={"fast": ("gemini-2.5-flash", "gemini-2.5-flash-lite"),
                                                  "strong": ("gemini-2.5-pro",)})


class TestRouter:
    def test_each_attempt_is_reserved_and_a_failed_one_cancelled(self) -> None:
        """A 503 from the first model spends nothing (cancelled); the fallback's answer settles its usage."""
        gate, backend = LedgerGate(), Backend(failures=["server_error"])
        _router(backend).with_budget(gate).generate(tier="fast", system="s", prompt="p", schema=Text)
        assert gate.ended == [("gemini-2.5-flash", "cancelled"), ("gemini-2.5-flash-lite", 5)]

    def test_a_refused_reservation_sends_nothing(self) -> None:
        """Over the cap the model is never called and `BudgetExceeded` reaches the caller."""
        gate, backend = LedgerGate(refuse_after=0), Backend()
        with pytest.raises(BudgetExceeded, match="cap reached"):
            _router(backend).with_budget(gate).generate(tier="fast", system="s", prompt="p", schema=Text)
        assert backend.calls == 0

    def test_the_context_budget_applies_when_the_router_names_none(self) -> None:
        """`budget_scope` (like a step's run context) caps a router built without one."""
        gate = LedgerGate()
        with budget_scope(gate):
            _router(Backend()).generate(tier="strong", system="s", prompt="p", schema=Text)
        _router(Backend()).generate(tier="strong", system="s", prompt="p", schema=Text)
        assert gate.ended == [("gemini-2.5-pro", 5)]


class TestBelt:
    def _belt(self, calls: list[str], cached: bool = False) -> ToolBelt:
        def search(args: Text, ctx: ToolContext) -> Costed[Text]:
            calls.append(args.text)
            return Costed(output=Text(text="found"), cost=ToolCost(credits=0.0 if cached else 1.0))

        return ToolBelt([Tool("web_search", "d", Text, Text, search, credits_per_call=1.0),
                         Tool("free", "d", Text, Text, lambda a, c: a)])

    def test_a_paid_tool_is_reserved_for_its_attempts_and_settled_at_its_credits(self) -> None:
        """Two attempts' credits are held; the run settles the credits it reported (a cache hit: 0, cached)."""
        gate, calls = LedgerGate(), []
        self._belt(calls).with_budget(gate).run("web_search", {"text": "q"}, ToolContext(workspace_id="w"))
        self._belt(calls, cached=True).with_budget(gate).run("web_search", {"text": "q"}, ToolContext("w"))
        self._belt(calls).with_budget(gate).run("free", {"text": "q"}, ToolContext(workspace_id="w"))
        assert gate.ended == [("tavily:web_search:2", (1.0, False)), ("tavily:web_search:2", (0.0, True))]

    def test_over_the_cap_the_belt_raises_instead_of_reporting_a_tool_error(self) -> None:
        """A refused paid call must pause the campaign, so it is not turned into a retryable `ToolError`."""
        calls: list[str] = []
        with pytest.raises(BudgetExceeded):
            self._belt(calls).with_budget(LedgerGate(refuse_after=0)).run("web_search", {"text": "q"},
                                                                            ToolContext(workspace_id="w"))
        assert calls == []
