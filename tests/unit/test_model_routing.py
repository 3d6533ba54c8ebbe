"""Model routing: tiers per task, fallback cascades, circuit breakers on a fake clock, workspace overrides."""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel

from shared.errors import ConfigurationError, InvalidRequest
from shared.models import (
    AllModelsFailed,
    CircuitBreaker,
    CircuitBreakers,
    FakeClock,
    ModelCallFailed,
    ModelRouter,
    tier_for,
    workspace_models,
)
from shared.ports import AttemptOutcome, StructuredModel, Usage


class Answer(BaseModel):
    text: str


@dataclass
class FakeBackend:
    """Per model, a queue of outcomes: "ok", a failure outcome, or an exception to raise."""

    script: dict[str, deque[str | BaseException]] = field(default_factory=lambda: defaultdict(deque))
    calls: list[tuple[str, float]] = field(default_factory=list)

    def fail(self, model: str, *outcomes: str | BaseException) -> None:
        self.script[model].extend(outcomes)

    def generate_once(self, *, model: str, system: str, prompt: str, schema: type[Any],
                      timeout_seconds: float) -> tuple[Any, Usage]:
        self.calls.append((model, timeout_seconds))
        step = self.script[model].popleft() if self.script[model] else "ok"
        if isinstance(step, BaseException):
            raise step
        if step != "ok":
            outcome: AttemptOutcome = step  # type: ignore[assignment]
            wasted = Usage(model=model, prompt_tokens=7, output_tokens=3) if outcome == "invalid_output" else None
            raise ModelCallFailed(f"{model} failed: {outcome}", model=model, outcome=outcome, usage=wasted)
        return schema(text=f"from {model}"), Usage(model=model, prompt_tokens=10, cached_tokens=2, output_tokens=5,
                                                    thinking_tokens=4)


CASCADES = {"fast": ("gemini-2.5-flash", "gemini-2.5-flash-lite"), "strong": ("gemini-2.5-pro", "gemini-2.5-flash")}


def _router(backend: FakeBackend, clock: FakeClock, *, threshold: int = 2, cooldown: float = 30.0) -> ModelRouter:
    return ModelRouter(backend=backend, cascades=CASCADES,
                       breakers=CircuitBreakers(failure_threshold=threshold, cooldown_seconds=cooldown, clock=clock),
                       timeouts={"fast": 5.0, "strong": 9.0})


def _ask(router: StructuredModel, tier: str = "strong") -> Any:
    return router.generate(tier=tier, system="s", prompt="p", schema=Answer)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ breaker


def test_breaker_opens_after_consecutive_failures_and_half_opens_after_the_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("m", failure_threshold=3, cooldown_seconds=30, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed", "a success resets the count; only consecutive failures open it"
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.retry_at() == clock.now + 30
    clock.advance(29.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.state == "half_open"


def test_half_open_lets_one_probe_through_and_its_outcome_decides() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("m", failure_threshold=1, cooldown_seconds=10, clock=clock)
    breaker.record_failure()
    clock.advance(10)
    assert breaker.allow() is True
    assert breaker.allow() is False, "only one probe at a time"
    breaker.record_failure()
    assert breaker.state == "open" and breaker.retry_at() == clock.now + 10, "a failed probe starts a new cool-down"
    clock.advance(10)
    assert breaker.allow()
    breaker.release()
    assert breaker.allow(), "a released probe slot can be taken again"
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


def test_breaker_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="failure_threshold must be at least 1, got 0"):
        CircuitBreaker("m", failure_threshold=0)


# ------------------------------------------------------------------------------------------- router


@pytest.mark.parametrize("outcome", ["timeout", "rate_limited", "server_error", "unreachable", "not_found"])
def test_an_unhealthy_primary_falls_back_to_the_next_model_and_the_route_says_so(outcome: str) -> None:
    backend, clock = FakeBackend(), FakeClock()
    backend.fail("gemini-2.5-pro", outcome)
    router = _router(backend, clock)

    out = _ask(router)

    assert out.value.text == "from gemini-2.5-flash"
    assert out.usage.model == "gemini-2.5-flash"
    assert out.route is not None
    assert out.route.model == "gemini-2.5-flash" and out.route.tier == "strong" and out.route.fallbacks == 1
    assert [(a.model, a.outcome) for a in out.route.attempts] == [("gemini-2.5-pro", outcome),
                                                                    ("gemini-2.5-flash", "ok")]
    assert backend.calls == [("gemini-2.5-pro", 9.0), ("gemini-2.5-flash", 9.0)], "the tier's timeout is passed"
    assert router.breakers.get("gemini-2.5-pro").state == "closed", "one failure is below the threshold"
    assert out.route.as_dict()["attempts"][0]["outcome"] == outcome


def test_the_circuit_opens_after_n_failures_skips_the_model_then_probes_it_after_the_cooldown() -> None:
    backend, clock = FakeBackend(), FakeClock()
    backend.fail("gemini-2.5-pro", "server_error", "rate_limited")
    router = _router(backend, clock, threshold=2, cooldown=30)

    _ask(router)
    _ask(router)
    assert router.breakers.states()["gemini-2.5-pro"] == "open"

    skipped = _ask(router)
    assert [c[0] for c in backend.calls[-1:]] == ["gemini-2.5-flash"], "an open circuit is not called"
    assert skipped.route is not None
    assert [(a.model, a.outcome) for a in skipped.route.attempts] == [("gemini-2.5-pro", "circuit_open"),
                                                                       ("gemini-2.5-flash", "ok")]

    clock.advance(30)
    probed = _ask(router)
    assert probed.route is not None and probed.route.model == "gemini-2.5-pro" and probed.route.fallbacks == 0
    assert router.breakers.states()["gemini-2.5-pro"] == "closed"


def test_invalid_output_falls_back_without_blaming_the_models_health_and_keeps_the_wasted_tokens() -> None:
    backend, clock = FakeBackend(), FakeClock()
    backend.fail("gemini-2.5-flash", "invalid_output")
    router = _router(backend, clock, threshold=1)

    out = _ask(router, "fast")

    assert out.route is not None and out.route.model == "gemini-2.5-flash-lite"
    wasted = out.route.attempts[0]
    assert wasted.outcome == "invalid_output" and wasted.usage == Usage(model="gemini-2.5-flash", prompt_tokens=7,
                                                                         output_tokens=3)
    assert router.breakers.get("gemini-2.5-flash").state == "closed"


def test_every_model_failing_raises_a_retryable_error_naming_each_attempt() -> None:
    backend, clock = FakeBackend(), FakeClock()
    backend.fail("gemini-2.5-pro", "timeout")
    backend.fail("gemini-2.5-flash", "server_error")
    router = _router(backend, clock)

    with pytest.raises(AllModelsFailed) as caught:
        _ask(router)

    error = caught.value
    assert error.retryable and error.code == "upstream_unavailable"
    assert "gemini-2.5-pro: timeout" in error.message and "gemini-2.5-flash: server_error" in error.message
    assert [a["outcome"] for a in error.details["attempts"]] == ["timeout", "server_error"]


def test_errors_another_model_would_not_fix_are_raised_at_once_and_free_the_probe() -> None:
    backend, clock = FakeBackend(), FakeClock()
    router = _router(backend, clock, threshold=1, cooldown=5)
    backend.fail("gemini-2.5-pro", "server_error")
    _ask(router)
    clock.advance(5)
    backend.fail("gemini-2.5-pro", ConfigurationError("Gemini rejected the API key (403); check GEMINI_API_KEY."))

    with pytest.raises(ConfigurationError):
        _ask(router)

    assert [c[0] for c in backend.calls] == ["gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-pro"]
    assert router.breakers.get("gemini-2.5-pro").allow(), "the half-open probe slot was released"


def test_tasks_map_to_tiers() -> None:
    assert {t: tier_for(t) for t in ("summarization", "classification", "lint_assist", "content_execution")} == \
        dict.fromkeys(("summarization", "classification", "lint_assist", "content_execution"), "fast")
    assert tier_for("planning") == tier_for("strategy") == "strong"


def test_a_tier_without_models_is_refused() -> None:
    with pytest.raises(ValueError, match="the strong tier has no models; set MUSE_MODEL_STRONG"):
        ModelRouter(backend=FakeBackend(), cascades={"fast": ("gemini-2.5-flash",), "strong": ()})


# ------------------------------------------------------------------------------- workspace override


def test_a_workspace_override_goes_first_with_the_deployment_models_behind_it() -> None:
    backend, clock = FakeBackend(), FakeClock()
    router = _router(backend, clock)
    workspace = router.for_workspace({"models": {"strong": ["models/gemini-3-pro-preview", "gemini-2.5-pro"]},
                                      "qa_max_revisions": 3})

    assert workspace.cascade("strong") == ("gemini-3-pro-preview", "gemini-2.5-pro", "gemini-2.5-flash")
    assert workspace.cascade("fast") == CASCADES["fast"]
    assert router.cascade("strong") == CASCADES["strong"], "the shared router is unchanged"
    assert _ask(workspace).route.model == "gemini-3-pro-preview"
    assert workspace.breakers is router.breakers
    assert router.for_workspace({}) is router and router.for_workspace(None) is router


@pytest.mark.parametrize(("settings", "fragment"), [
    ({"models": "gemini-2.5-pro"}, "workspace setting 'models' must be an object"),
    ({"models": {"strong": ["Gemini Pro!"]}}, "'Gemini Pro!' is not a Gemini model id"),
    ({"models": {"strong": []}}, "models.strong"),
    ({"models": {"medium": ["gemini-2.5-pro"]}}, "models.medium"),
])
def test_a_bad_workspace_override_is_rejected_naming_the_value(settings: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        workspace_models(settings)
    assert fragment in caught.value.message
