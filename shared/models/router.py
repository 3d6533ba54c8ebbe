"""The model router: a `StructuredModel` that walks a tier's fallback cascade behind circuit breakers.

A call goes to the first model of the tier whose breaker lets it through. Timeouts, 429s, 5xx and
unreachable or unknown models count against that model's breaker and move on to the next one;
an answer that does not fit the schema moves on too, without blaming the model's health. Anything
else (a rejected key, a malformed request) is not the model's fault and is raised at once. The
`Route` of every call (model used, every attempt, how many fallbacks) comes back with the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar, cast

from pydantic import BaseModel

from shared.errors import UpstreamUnavailable
from shared.models.breaker import CircuitBreakers, Clock
from shared.models.routing import cascade, merge_cascades, workspace_models
from shared.models.spend import Hold, SpendGate, current_budget
from shared.ports import AttemptOutcome, Generated, ModelTier, Route, RouteAttempt, Usage

T = TypeVar("T", bound=BaseModel)
R = TypeVar("R")

_UNHEALTHY: frozenset[AttemptOutcome] = frozenset({"timeout", "rate_limited", "server_error", "unreachable",
                                                   "not_found"})
"""Outcomes that count against a model's breaker."""


class ModelCallFailed(UpstreamUnavailable):
    """One model failed in a way the next model of the cascade may not."""

    def __init__(self, message: str, *, model: str, outcome: AttemptOutcome, usage: Usage | None = None) -> None:
        super().__init__(message, details={"model": model, "outcome": outcome})
        self.model = model
        self.outcome = outcome
        self.usage = usage


class AllModelsFailed(UpstreamUnavailable):
    """Every model of a tier failed or had its breaker open; QStash should deliver the step again later."""

    def __init__(self, tier: ModelTier, attempts: Sequence[RouteAttempt]) -> None:
        tried = "; ".join(f"{a.model}: {a.outcome}{' (' + a.detail + ')' if a.detail else ''}" for a in attempts)
        super().__init__(
            f"No model of the {tier} tier answered ({tried or 'the cascade is empty'}); "
            "the step will be retried, or add models to the tier's cascade.",
            details={"tier": tier, "attempts": [a.as_dict() for a in attempts]},
        )
        self.tier = tier
        self.attempts = tuple(attempts)


class ModelBackend(Protocol):
    """Calls exactly one model; raises `ModelCallFailed` for failures another model may not have."""

    def generate_once(self, *, model: str, system: str, prompt: str, schema: type[T],
                      timeout_seconds: float) -> tuple[T, Usage]:
        """The answer of `model` parsed into `schema`, and the tokens it cost."""
        ...


@dataclass(frozen=True)
class Routed(Generic[R]):
    """A value produced through the router and the route that produced it."""

    value: R
    route: Route


@dataclass(frozen=True)
class ModelRouter:
    """`StructuredModel` over a `ModelBackend`, with per-tier cascades and per-model breakers.

    Build one per process (`shared.integrations.gemini.structured_model`), and a view per workspace
    with `for_workspace`; views share the backend and the breakers.
    """

    backend: ModelBackend
    cascades: Mapping[ModelTier, tuple[str, ...]]
    breakers: CircuitBreakers = field(default_factory=CircuitBreakers)
    timeouts: Mapping[ModelTier, float] = field(default_factory=lambda: {"fast": 30.0, "strong": 120.0})
    """Seconds one model may take before the call moves on to the next."""
    timer: Clock = time.perf_counter
    """Measures attempt latency (separate from the breakers' clock)."""
    budget: SpendGate | None = None
    """Reserves each attempt's worst-case cost before it is sent and settles its usage after; None: the
    context's (`shared.models.spend.current_budget`, bound by each campaign step), else no caps."""

    def __post_init__(self) -> None:
        cascades = {tier: cascade(models) for tier, models in self.cascades.items()}
        for tier in ("fast", "strong"):
            if not cascades.get(tier):
                raise ValueError(f"the {tier} tier has no models; set MUSE_MODEL_{tier.upper()}")
        object.__setattr__(self, "cascades", cascades)

    def cascade(self, tier: ModelTier) -> tuple[str, ...]:
        """The models of `tier`, in the order they are tried."""
        return self.cascades[tier]

    def for_workspace(self, workspace_settings: Mapping[str, Any] | None) -> ModelRouter:
        """This router with the workspace's `models` settings in front of each tier's cascade."""
        overrides = workspace_models(workspace_settings)
        if overrides.fast is None and overrides.strong is None:
            return self
        return replace(self, cascades=merge_cascades(self.cascades, overrides))

    def with_budget(self, budget: SpendGate | None) -> ModelRouter:
        """This router with every attempt checked against `budget` (a campaign's caps) before it is sent."""
        return replace(self, budget=budget)

    def with_cascades(self, **cascades: Sequence[str]) -> ModelRouter:
        """This router with some tiers' cascades replaced (e.g. `with_cascades(strong=[...])`)."""
        replaced = {cast(ModelTier, t): cascade(m) for t, m in cascades.items()}  # keywords name tiers
        return replace(self, cascades={**self.cascades, **replaced})

    def generate(self, *, tier: ModelTier, system: str, prompt: str, schema: type[T]) -> Generated[T]:
        """Ask the first healthy model of `tier`; raises `AllModelsFailed` when none answers."""
        routed = self.invoke(tier, lambda model, timeout: self.backend.generate_once(
            model=model, system=system, prompt=prompt, schema=schema, timeout_seconds=timeout),
            prompt_chars=len(system) + len(prompt))
        value, usage = routed.value
        return Generated(value=value, usage=usage, route=routed.route)

    def invoke(self, tier: ModelTier, call: Callable[[str, float], R], *,
               prompt_chars: int | None = None) -> Routed[R]:
        """Run `call(model, timeout_seconds)` down the cascade of `tier` until one model succeeds.

        `call` must raise `ModelCallFailed` for failures worth a fallback; the agent loop uses this
        to route raw function-calling requests the same way `generate` routes structured ones.
        `prompt_chars` (when known) sizes each attempt's budget reservation to the prompt.
        """
        attempts: list[RouteAttempt] = []
        timeout = self.timeouts[tier]
        budget = self.budget if self.budget is not None else current_budget()
        for model in self.cascades[tier]:
            breaker = self.breakers.get(model)
            if not breaker.allow():
                attempts.append(RouteAttempt(model=model, outcome="circuit_open", detail="breaker open"))
                continue
            started = self.timer()
            hold: Hold | None = None
            try:
                if budget is not None:
                    hold = budget.reserve_model(model, prompt_chars=prompt_chars)
                value = call(model, timeout)
            except ModelCallFailed as exc:
                if hold is not None and exc.usage is not None:
                    hold.settle_model(exc.usage)
                elif hold is not None:
                    hold.cancel()
                elapsed = (self.timer() - started) * 1000
                if exc.outcome in _UNHEALTHY:
                    breaker.record_failure()
                else:
                    breaker.record_success()
                attempts.append(RouteAttempt(model=model, outcome=exc.outcome, latency_ms=elapsed,
                                             detail=exc.message[:300], usage=exc.usage))
                continue
            except BaseException:
                if hold is not None:
                    hold.cancel()
                breaker.release()
                raise
            if hold is not None:
                hold.settle_model(_usage_in(value))
            breaker.record_success()
            attempts.append(RouteAttempt(model=model, outcome="ok", latency_ms=(self.timer() - started) * 1000))
            return Routed(value=value, route=Route(tier=tier, model=model, attempts=tuple(attempts)))
        raise AllModelsFailed(tier, attempts)


def _usage_in(value: object) -> Usage | None:
    """The usage a call returned: a `(value, Usage)` pair, or a response carrying Gemini's `usage_metadata`."""
    if isinstance(value, tuple) and value and isinstance(value[-1], Usage):
        return value[-1]
    metadata = getattr(value, "usage_metadata", None)
    if metadata is None:
        return None
    model = str(getattr(value, "model_version", None) or "")
    return Usage(model=model, prompt_tokens=metadata.prompt_token_count or 0,
                 cached_tokens=metadata.cached_content_token_count or 0,
                 output_tokens=metadata.candidates_token_count or 0,
                 thinking_tokens=metadata.thoughts_token_count or 0)
