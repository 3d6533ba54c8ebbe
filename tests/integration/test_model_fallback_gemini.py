"""Model routing over real HTTP: the official google-genai SDK against the scripted Gemini emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from infra.local.emulators.gemini import estimate_tokens
from infra.local.serve import RunningServer
from shared.campaigns.schemas import Plan, ResearchSummary
from shared.errors import ConfigurationError, PermanentStepError
from shared.integrations.gemini import model_router, structured_model
from shared.models import AllModelsFailed, CircuitBreakers, FakeClock, ModelRouter, UsageLedger
from shared.settings import Settings
from tests.integration.gemini_fixtures import GEMINI_CONFIG

PRO, FLASH, LITE = "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"


def settings_for(url: str, **overrides: str) -> Settings:
    env = {
        "DATABASE_URL": "postgresql://unused", "QSTASH_TOKEN": "t", "QSTASH_CURRENT_SIGNING_KEY": "c",
        "QSTASH_NEXT_SIGNING_KEY": "n", "UPSTASH_REDIS_REST_URL": "http://127.0.0.1:9", "UPSTASH_REDIS_REST_TOKEN": "t",
        "TAVILY_API_KEY": "k", "PHONEPE_CLIENT_ID": "c", "PHONEPE_CLIENT_SECRET": "s", "PHONEPE_WEBHOOK_USERNAME": "u",
        "PHONEPE_WEBHOOK_PASSWORD": "p", "GEMINI_API_KEY": GEMINI_CONFIG.gemini_api_key, "GEMINI_BASE_URL": url,
        "MUSE_MODEL_FALLBACKS_FAST": LITE, "MUSE_MODEL_FALLBACKS_STRONG": FLASH,
        "MUSE_MODEL_TIMEOUT_FAST_SECONDS": "0.4", "MUSE_MODEL_BREAKER_FAILURES": "2",
        "MUSE_MODEL_BREAKER_COOLDOWN_SECONDS": "30",
    }
    return Settings(**{**env, **overrides})  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def router(gemini_server: RunningServer, clock: FakeClock) -> Iterator[ModelRouter]:
    settings = settings_for(gemini_server.url)
    built = model_router(settings, breakers=CircuitBreakers(failure_threshold=2, cooldown_seconds=30, clock=clock))
    try:
        yield built
    finally:
        built.backend.client.close()  # type: ignore[attr-defined]


def script(gemini_http: httpx.Client, *rules: dict[str, Any]) -> None:
    gemini_http.post("/_emulator/script", json={"rules": list(rules)}).raise_for_status()


def served(gemini_http: httpx.Client) -> list[tuple[str, int]]:
    return [(r["model"], r["status"]) for r in gemini_http.get("/_emulator/requests").json()]


def plan(router: ModelRouter, prompt: str = "Plan a Diwali tea launch") -> Any:
    return router.generate(tier="strong", system="You plan campaigns.", prompt=prompt, schema=Plan)


def test_a_503_from_the_primary_falls_back_to_the_next_model_and_records_it(router: ModelRouter,
                                                                             gemini_http: httpx.Client) -> None:
    script(gemini_http, {"match": {"model": PRO}, "status": 503, "times": 1})

    out = plan(router)

    assert isinstance(out.value, Plan)
    assert out.route is not None and out.route.model == FLASH and out.route.fallbacks == 1
    first, second = out.route.attempts
    assert (first.model, first.outcome, second.model, second.outcome) == (PRO, "server_error", FLASH, "ok")
    assert "503" in first.detail
    assert out.usage.model == FLASH and out.usage.prompt_tokens > 0 and out.usage.output_tokens > 0
    assert served(gemini_http) == [(PRO, 503), (FLASH, 200)]


def test_the_circuit_opens_after_n_failures_and_half_opens_after_the_cooldown(
        router: ModelRouter, gemini_http: httpx.Client, clock: FakeClock) -> None:
    script(gemini_http, {"match": {"model": PRO}, "status": 503, "times": 2})

    plan(router)
    plan(router)
    assert router.breakers.states()[PRO] == "open"
    skipped = plan(router)
    assert [(a.model, a.outcome) for a in skipped.route.attempts] == [(PRO, "circuit_open"), (FLASH, "ok")]
    assert served(gemini_http) == [(PRO, 503), (FLASH, 200), (PRO, 503), (FLASH, 200), (FLASH, 200)], \
        "an open circuit sends nothing to its model"

    clock.advance(30)
    assert router.breakers.states()[PRO] == "half_open"
    probed = plan(router)
    assert probed.route.model == PRO and probed.route.fallbacks == 0
    assert router.breakers.states()[PRO] == "closed"


def test_a_timeout_or_a_429_moves_the_fast_tier_to_its_fallback(router: ModelRouter, gemini_http: httpx.Client) -> None:
    script(gemini_http, {"match": {"model": FLASH}, "delay_seconds": 1.0, "times": 1},
           {"match": {"model": FLASH}, "status": 429, "times": 1})

    slow = router.generate(tier="fast", system="Summarise.", prompt="Sources: none", schema=ResearchSummary)
    throttled = router.generate(tier="fast", system="Summarise.", prompt="Sources: none", schema=ResearchSummary)

    assert [(a.model, a.outcome) for a in slow.route.attempts] == [(FLASH, "timeout"), (LITE, "ok")]
    assert "did not answer within 0.4s" in slow.route.attempts[0].detail
    assert [(a.model, a.outcome) for a in throttled.route.attempts] == [(FLASH, "rate_limited"), (LITE, "ok")]


def test_output_that_misses_the_schema_falls_back_and_keeps_the_wasted_tokens(router: ModelRouter,
                                                                              gemini_http: httpx.Client) -> None:
    script(gemini_http, {"match": {"model": PRO}, "response": {"json": {"objective": "only this"}}, "times": 1})

    out = plan(router)

    wasted = out.route.attempts[0]
    assert (wasted.outcome, out.route.model) == ("invalid_output", FLASH)
    assert wasted.usage is not None and wasted.usage.model == PRO and wasted.usage.output_tokens > 0
    assert router.breakers.states()[PRO] == "closed"


def test_a_workspace_override_picks_the_overridden_model(router: ModelRouter, gemini_http: httpx.Client) -> None:
    workspace = router.for_workspace({"models": {"strong": ["gemini-3-pro-preview"]}})

    out = plan(workspace)

    assert out.route.model == "gemini-3-pro-preview" and out.usage.model == "gemini-3-pro-preview"
    assert served(gemini_http) == [("gemini-3-pro-preview", 200)]

    script(gemini_http, {"match": {"model": "gemini-3-pro-preview"}, "status": 500, "times": 1})
    assert plan(workspace).route.model == PRO, "the deployment's cascade stays behind the override"


def test_failures_another_model_cannot_fix_are_not_retried_elsewhere(router: ModelRouter, gemini_server: RunningServer,
                                                                     gemini_http: httpx.Client) -> None:
    script(gemini_http, {"match": {"model": PRO}, "status": 400, "message": "Invalid JSON payload", "times": 1})
    with pytest.raises(PermanentStepError, match="rejected the request \\(400\\)"):
        plan(router)
    assert served(gemini_http) == [(PRO, 400)]

    wrong_key = structured_model(settings_for(gemini_server.url, GEMINI_API_KEY="not-the-key"))
    with pytest.raises(ConfigurationError, match="check GEMINI_API_KEY"):
        plan(wrong_key)


def test_every_model_down_raises_a_retryable_error(router: ModelRouter, gemini_http: httpx.Client) -> None:
    script(gemini_http, {"match": {"model": PRO}, "status": 503}, {"match": {"model": FLASH}, "status": 502})
    with pytest.raises(AllModelsFailed) as caught:
        plan(router)
    assert caught.value.retryable
    assert [a["outcome"] for a in caught.value.details["attempts"]] == ["server_error", "server_error"]


def test_usage_of_real_calls_adds_up_per_node_and_campaign(router: ModelRouter, gemini_http: httpx.Client) -> None:
    ledger = UsageLedger()
    system, prompt = "You plan campaigns.", "Plan a Holi colour-run sponsorship"
    ledger.record_generated(campaign_id="c1", node="plan", generated=plan(router, prompt))
    ledger.record_generated(campaign_id="c1", node="plan", generated=plan(router, prompt))
    summary = router.generate(tier="fast", system="Summarise.", prompt="Sources: none", schema=ResearchSummary)
    ledger.record_generated(campaign_id="c1", node="summarize", generated=summary)

    nodes = ledger.by_node("c1")
    assert nodes["plan"].calls == 2
    assert nodes["plan"].prompt_tokens == 2 * estimate_tokens(f"{system}\n{prompt}")
    assert nodes["summarize"].calls == 1
    assert ledger.campaign_total("c1").output_tokens == nodes["plan"].output_tokens + nodes["summarize"].output_tokens
    assert set(ledger.by_model("c1")) == {PRO, FLASH}
