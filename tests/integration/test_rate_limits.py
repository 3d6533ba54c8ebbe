"""Plan limits for real: the official `upstash-ratelimit` SDK against the Upstash REST emulator over an
embedded Redis, campaign starts and AI credits through the API's service on real Postgres, and the
API edge's 429 with `Retry-After`. A limiter outage lets requests through.
"""

from __future__ import annotations

import hashlib
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import flask
import pytest
from psycopg_pool import ConnectionPool
from upstash_ratelimit import FixedWindow, Ratelimit, SlidingWindow, TokenBucket
from upstash_redis import Redis
from upstash_redis.errors import UpstashError

from infra.local.emulators.upstash_redis import served_over_embedded_redis
from infra.local.token import mint
from shared.api import app as api_app
from shared.api import plan as plan_api
from shared.api.chat import ChatRequest
from shared.api.models import CreateCampaign
from shared.api.service import Api
from shared.auth import Principal, verify_token
from shared.chat import app as chat_app
from shared.chat.service import ChatService
from shared.db import budgets
from shared.db.pool import connect
from shared.db.workspaces import ensure_workspace
from shared.errors import NotFound, QuotaExceeded
from shared.plans import TIERS, Tier, rate_limiter, set_workspace_tier
from shared.settings import Settings, get_settings
from shared.testing.fakes import RecordingQueue
from shared.testing.payments import FakePhonePe
from tests.integration.knowledge_world import BASE_ENV

TOKEN = "rate-limit-upstash-token"
ISSUER = "http://127.0.0.1/auth/v1"


@pytest.fixture(scope="module")
def rest_url() -> Iterator[str]:
    """The Upstash Redis REST emulator (mounted as in the local stack) over a real embedded Redis."""
    with served_over_embedded_redis(TOKEN) as url:
        yield url


@pytest.fixture
def sdk(rest_url: str) -> Iterator[Redis]:
    client = Redis(url=rest_url, token=TOKEN, rest_retries=0)
    try:
        yield client
    finally:
        client.close()


def _env(dsn: str, rest_url: str) -> dict[str, str]:
    return {**BASE_ENV, "DATABASE_URL": dsn, "UPSTASH_REDIS_REST_URL": rest_url, "UPSTASH_REDIS_REST_TOKEN": TOKEN}


def _settings(dsn: str, rest_url: str) -> Settings:
    return Settings(**_env(dsn, rest_url))  # type: ignore[arg-type]


def _member(dsn: str) -> tuple[str, Principal, str]:
    """A new workspace (on the default free tier) and its only member: (workspace id, principal, token)."""
    slug = f"rl-{uuid.uuid4().hex[:10]}"
    user_id = str(uuid.uuid4())
    with connect(dsn) as conn, conn.transaction():
        workspace_id = ensure_workspace(conn, slug=slug, name=slug, user_id=user_id)
    token = mint(BASE_ENV["SUPABASE_JWT_SECRET"], user_id=user_id, workspace_id=workspace_id, slug=slug, issuer=ISSUER)
    settings = Settings(**{**BASE_ENV, "DATABASE_URL": dsn})  # type: ignore[arg-type]
    return workspace_id, verify_token(f"Bearer {token}", settings), token


def _brief(n: int) -> CreateCampaign:
    return CreateCampaign.model_validate({"kind": "move", "brief": {"title": f"Move {n}", "objective": "Sell tea",
                                                                    "channels": ["email"]}})


class TestEmulatorScripts:
    """The SDK's Lua scripts open with `#!lua flags=allow-key-locking`; the emulator serves them as Upstash does."""

    @pytest.mark.parametrize("limiter", [SlidingWindow(3, 10), FixedWindow(3, 10), TokenBucket(3, 1, 10)],
                             ids=["sliding", "fixed", "token-bucket"])
    def test_every_sdk_limiter_counts_and_refuses(self, sdk: Redis, limiter: Any) -> None:
        ratelimit = Ratelimit(redis=sdk, limiter=limiter, prefix=f"t:{uuid.uuid4().hex}")
        answers = [ratelimit.limit("id") for _ in range(4)]
        assert [a.allowed for a in answers] == [True, True, True, False]
        assert [a.remaining for a in answers] == [2, 1, 0, 0]

    def test_a_loaded_script_runs_by_the_sha_the_client_computes(self, sdk: Redis) -> None:
        script = "#!lua flags=no-writes,allow-key-locking\nreturn ARGV[1] .. KEYS[1]"
        sha = hashlib.sha1(script.encode()).hexdigest()
        assert sdk.script_load(script) == sha
        assert sdk.script_exists(sha, "0" * 40) == [1, 0]
        assert sdk.evalsha(sha, keys=["k"], args=["v"]) == "vk"
        assert sdk.eval(script, keys=["a"], args=["b"]) == "ba"

    @pytest.mark.parametrize(("script", "error"), [
        ("#!lua flags=fast-please\nreturn 1", "Unexpected flag in script shebang: fast-please"),
        ("#!python\nreturn 1", "Could not find engine 'python'"),
        ("#!lua name=lib\nreturn 1", "Unknown lua shebang option: name"),
    ])
    def test_a_bad_shebang_is_refused(self, sdk: Redis, script: str, error: str) -> None:
        with pytest.raises(UpstashError, match=error):
            sdk.eval(script)

    def test_an_error_in_a_script_keeps_its_line_number(self, sdk: Redis) -> None:
        with pytest.raises(UpstashError, match=":3:"):
            sdk.eval("#!lua\nlocal x = 1\nreturn x + nil")


def _clear_of_a_minute_boundary(margin_seconds: float = 10.0) -> None:
    """Wait for a fresh minute when a burst could straddle one.

    The SDK's sliding window weighs the previous minute down by the fraction elapsed (floored), so a burst that
    crosses a minute boundary gains a request or two: the limit is a rate, not an exact count at the boundary.
    """
    into_minute = time.time() % 60
    if into_minute > 60 - margin_seconds:
        time.sleep(60 - into_minute + 0.05)


SMALL = Tier(name="free", price_inr_monthly=0, monthly_ai_credits=1, campaign_starts_per_day=2,
             api_requests_per_minute=3, max_budget_inr=1)


class TestLimiter:
    def test_a_workspace_over_its_rate_gets_a_429_naming_the_limit(self, rest_url: str, migrated_dsn: str) -> None:
        limiter = rate_limiter(_settings(migrated_dsn, rest_url))
        workspace, other = str(uuid.uuid4()), str(uuid.uuid4())
        _clear_of_a_minute_boundary()
        verdicts = [limiter.enforce("api_requests_per_minute", workspace, SMALL) for _ in range(3)]
        assert [v.remaining for v in verdicts] == [2, 1, 0] and all(v.checked for v in verdicts)
        with pytest.raises(QuotaExceeded) as refused:
            limiter.enforce("api_requests_per_minute", workspace, SMALL)
        assert refused.value.details["limit"] == "api_requests_per_minute"
        assert 1 <= refused.value.retry_after_seconds <= 60
        assert "3 API requests per minute" in refused.value.message
        assert limiter.enforce("api_requests_per_minute", other, SMALL).allowed
        assert limiter.enforce("campaign_starts_per_day", workspace, SMALL).allowed

    def test_an_unreachable_limiter_fails_open_fast(self, migrated_dsn: str, caplog: pytest.LogCaptureFixture) -> None:
        limiter = rate_limiter(_settings(migrated_dsn, "http://127.0.0.1:9/upstash-redis"))
        started = time.perf_counter()
        verdicts = [limiter.enforce("api_requests_per_minute", "w", SMALL) for _ in range(5)]
        assert all(v.allowed and not v.checked for v in verdicts)
        assert time.perf_counter() - started < 1.0
        assert caplog.text.count("rate limiter unavailable") == 1

    def test_a_hung_limiter_costs_one_timeout_then_rests(self, migrated_dsn: str) -> None:
        """A Redis that accepts and never answers: the first check waits out the 0.5 s timeout, the rest pass."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        try:
            limiter = rate_limiter(_settings(migrated_dsn, f"http://127.0.0.1:{listener.getsockname()[1]}"))
            started = time.perf_counter()
            first = limiter.enforce("api_requests_per_minute", "w", SMALL)
            waited = time.perf_counter() - started
            rest = [limiter.enforce("api_requests_per_minute", "w", SMALL) for _ in range(20)]
            assert first.allowed and not first.checked and 0.4 < waited < 2.0
            assert all(v.allowed and not v.checked for v in rest) and time.perf_counter() - started < 2.5
        finally:
            listener.close()


@pytest.fixture
def api(pool: ConnectionPool, migrated_dsn: str, rest_url: str) -> Api:
    return Api(settings=_settings(migrated_dsn, rest_url), pool=pool, queue=RecordingQueue(),
               phonepe_factory=FakePhonePe)


def _campaigns(dsn: str, workspace_id: str) -> int:
    with connect(dsn) as conn:
        row = conn.execute("SELECT count(*) AS n FROM public.campaigns WHERE workspace_id = %s",
                           (workspace_id,)).fetchone()
    assert row is not None
    return int(row["n"])


class TestCampaignStarts:
    def test_a_free_workspace_starts_five_a_day_and_a_retry_is_not_a_start(self, api: Api, migrated_dsn: str) -> None:
        workspace_id, principal, _ = _member(migrated_dsn)
        first, created = api.create_campaign(principal, _brief(0), idempotency_key="k0", workspace=None)
        assert created
        for n in range(1, 5):
            api.create_campaign(principal, _brief(n), idempotency_key=f"k{n}", workspace=None)
        again, created = api.create_campaign(principal, _brief(0), idempotency_key="k0", workspace=None)
        assert again.id == first.id and not created
        with pytest.raises(QuotaExceeded) as refused:
            api.create_campaign(principal, _brief(5), idempotency_key="k5", workspace=None)
        assert refused.value.details["limit"] == "campaign_starts_per_day"
        assert refused.value.details == {**refused.value.details, "tier": "free", "allowed": 5}
        assert _campaigns(migrated_dsn, workspace_id) == 5

    def test_used_up_credits_refuse_a_start_until_an_upgrade(self, api: Api, pool: ConnectionPool,
                                                                          migrated_dsn: str) -> None:
        workspace_id, principal, _ = _member(migrated_dsn)
        api.create_campaign(principal, _brief(0), idempotency_key=None, workspace=None)
        with connect(migrated_dsn) as conn, conn.transaction():  # the spend ledger settles US$0.999 + holds 0.001
            period = budgets.month_of(datetime.now(UTC).date())
            for amount, settle in ((999_000, True), (1_000, False)):
                held = uuid.uuid4()
                assert budgets.reserve(conn, reservation_id=held, workspace_id=workspace_id, campaign_id=None,
                                       period=period, amount=amount, default_monthly=None, default_campaign=None)["ok"]
                if settle:
                    assert budgets.settle(conn, held, amount)
        with pytest.raises(QuotaExceeded) as refused:
            api.create_campaign(principal, _brief(1), idempotency_key=None, workspace=None)
        details = refused.value.details
        assert details["limit"] == "monthly_ai_credits" and details["used"] == 1_000 and details["allowed"] == 1_000
        assert refused.value.retry_after_seconds >= 1 and "period_end" in details
        assert _campaigns(migrated_dsn, workspace_id) == 1

        for _ in range(2):
            state = set_workspace_tier(pool, workspace_id=workspace_id, tier_name="pro", actor="system", key="sub-1")
        assert state.tier is TIERS["pro"] and state.used_credits == 1_000 and state.remaining_credits == 19_000
        api.create_campaign(principal, _brief(1), idempotency_key=None, workspace=None)
        with connect(migrated_dsn) as conn:
            entries = conn.execute("SELECT details FROM public.audit_log WHERE workspace_id = %s AND "
                                   "action = 'plan.changed'", (workspace_id,)).fetchall()
        assert [e["details"]["to"] for e in entries] == ["pro"] and entries[0]["details"]["from"] is None


@pytest.fixture
def edge(api: Api, migrated_dsn: str, rest_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[flask.Flask]:
    """The API's dispatcher with `api` as its service and the environment pointing at the emulator."""
    yield from _edge(api, _env(migrated_dsn, rest_url), monkeypatch)


@pytest.fixture
def edge_without_redis(pool: ConnectionPool, migrated_dsn: str,
                       monkeypatch: pytest.MonkeyPatch) -> Iterator[flask.Flask]:
    """The same dispatcher while Upstash is unreachable (a refused port)."""
    env = _env(migrated_dsn, "http://127.0.0.1:9/upstash-redis")
    api = Api(settings=Settings(**env), pool=pool, queue=RecordingQueue(),  # type: ignore[arg-type]
              phonepe_factory=FakePhonePe)
    yield from _edge(api, env, monkeypatch)


def _edge(api: Api, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[flask.Flask]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    plan_api.service.cache_clear()
    monkeypatch.setattr(api_app, "api", lambda: api)
    try:
        yield flask.Flask("rate-limit-edge")
    finally:
        plan_api.service().pool.close()
        plan_api.service.cache_clear()
        get_settings.cache_clear()


def _call(app: flask.Flask, method: str, path: str, token: str, **kwargs: Any) -> flask.Response:
    with app.test_request_context(path, method=method, headers={"Authorization": f"Bearer {token}"}, **kwargs):
        return api_app.dispatch(flask.request)


class TestApiEdge:
    @pytest.mark.parametrize("header", ["", "not-a-uuid"])
    def test_a_cached_placement_never_lets_a_malformed_workspace_header_through(self, edge: flask.Flask,
                                                                                migrated_dsn: str,
                                                                                header: str) -> None:
        _, _, token = _member(migrated_dsn)
        assert _call(edge, "GET", "/api/v1/plan", token).status_code == 200
        with edge.test_request_context("/api/v1/plan", method="GET", headers={
                "Authorization": f"Bearer {token}", "X-Workspace-Id": header}):
            answer = api_app.dispatch(flask.request)
        assert answer.status_code == 400, answer.get_json()
        assert answer.get_json()["error"]["details"]["field"] == "X-Workspace-Id"

    def test_the_plan_and_a_429_with_retry_after_past_the_tiers_rate(self, edge: flask.Flask,
                                                                       migrated_dsn: str) -> None:
        workspace_id, _, token = _member(migrated_dsn)
        _clear_of_a_minute_boundary()
        answer = _call(edge, "GET", "/api/v1/plan", token)
        plan = answer.get_json()
        assert answer.status_code == 200, plan
        assert plan["workspace_id"] == workspace_id and plan["tier"] == "free"
        assert plan["credits"] == {"allowance": 1000, "used": 0, "remaining": 1000, "spent_micro_usd": 0,
                                   "reserved_micro_usd": 0}
        assert plan["limits"]["api_requests_per_minute"] == 60 and [t["tier"] for t in plan["tiers"]] == [
            "free", "pro", "agency"]
        statuses = [_call(edge, "GET", "/api/v1/plan", token).status_code for _ in range(59)]
        assert statuses == [200] * 59
        over = _call(edge, "GET", "/api/v1/campaigns", token)
        body = over.get_json()
        assert over.status_code == 429 and body["error"]["code"] == "quota_exceeded"
        assert body["error"]["details"]["limit"] == "api_requests_per_minute"
        assert int(over.headers["Retry-After"]) == body["error"]["details"]["retry_after_seconds"] >= 1

    def test_a_sixth_start_of_the_day_is_a_429(self, edge: flask.Flask, migrated_dsn: str) -> None:
        _, _, token = _member(migrated_dsn)
        statuses = [_call(edge, "POST", "/api/v1/campaigns", token, json=_brief(n).model_dump(mode="json")).status_code
                    for n in range(6)]
        assert statuses == [202] * 5 + [429]
        over = _call(edge, "POST", "/api/v1/campaigns", token, json=_brief(9).model_dump(mode="json"))
        assert over.get_json()["error"]["details"]["limit"] == "campaign_starts_per_day"
        assert int(over.headers["Retry-After"]) > 0

    def test_no_token_is_left_to_the_operation(self, edge: flask.Flask) -> None:
        with edge.test_request_context("/api/v1/plan", method="GET"):
            assert api_app.dispatch(flask.request).status_code == 401


def _chat(app: flask.Flask, method: str, path: str, token: str, **kwargs: Any) -> flask.Response:
    with app.test_request_context(path, method=method, headers={"Authorization": f"Bearer {token}"}, **kwargs):
        return chat_app.dispatch(flask.request)


class TestChatEdge:
    """The chat function's dispatcher runs the API edge's checks: the same per-workspace rate, the same 400s."""

    @pytest.fixture(autouse=True)
    def _no_chat_runtime(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def reached() -> ChatService:
            raise NotFound("the operation was reached")
        monkeypatch.setattr(chat_app, "chat", reached)

    def test_chat_requests_count_in_the_workspaces_rate(self, edge: flask.Flask, migrated_dsn: str) -> None:
        _, _, token = _member(migrated_dsn)
        conversation = uuid.uuid4()
        _clear_of_a_minute_boundary()
        first = _chat(edge, "GET", f"/api/v1/chat/{conversation}/events", token)
        assert first.status_code == 404 and first.get_json()["error"]["message"] == "the operation was reached"
        statuses = [_call(edge, "GET", "/api/v1/plan", token).status_code for _ in range(59)]
        assert statuses == [200] * 59
        over = _chat(edge, "POST", "/api/v1/chat/stream", token, json={"message": "Hello"})
        body = over.get_json()
        assert over.status_code == 429 and body["error"]["details"]["limit"] == "api_requests_per_minute"
        assert int(over.headers["Retry-After"]) >= 1
        assert _call(edge, "GET", "/api/v1/plan", token).status_code == 429

    def test_an_undocumented_query_parameter_is_a_400_naming_it(self, edge: flask.Flask, migrated_dsn: str) -> None:
        _, _, token = _member(migrated_dsn)
        refused = _chat(edge, "POST", "/api/v1/chat/stream?protocol=sse&stream=1", token, json={"message": "Hi"})
        error = refused.get_json()["error"]
        assert refused.status_code == 400 and error["details"] == {"field": "stream", "allowed": ["protocol"]}
        assert "`stream`" in error["message"]
        events = _chat(edge, "GET", f"/api/v1/chat/{uuid.uuid4()}/events?last_event_id=3&since=2", token)
        assert events.status_code == 400 and events.get_json()["error"]["details"]["field"] == "since"
        documented = _chat(edge, "GET", f"/api/v1/chat/{uuid.uuid4()}/events?last_event_id=3&protocol=ag-ui", token)
        assert documented.status_code == 404, documented.get_json()
        mounted = edge.test_request_context("/stream?cursor=1", method="POST", base_url="http://h/api/v1/chat",
                                            headers={"Authorization": f"Bearer {token}"}, json={"message": "Hi"})
        with mounted:
            answer = chat_app.dispatch(flask.request)
        assert answer.status_code == 400 and answer.get_json()["error"]["details"]["field"] == "cursor"


def test_used_up_credits_refuse_a_new_chat_turn(pool: ConnectionPool, migrated_dsn: str, rest_url: str) -> None:
    """As a campaign start: a 429 `monthly_ai_credits` before anything of the turn is built or stored."""
    workspace_id, principal, _ = _member(migrated_dsn)

    def no_turn(*_: Any) -> Any:
        raise AssertionError("the turn was built")

    service = ChatService(settings=_settings(migrated_dsn, rest_url), pool=pool, graph=None,  # type: ignore[arg-type]
                          turn_deps=no_turn)
    with connect(migrated_dsn) as conn, conn.transaction():
        held = uuid.uuid4()
        assert budgets.reserve(conn, reservation_id=held, workspace_id=workspace_id, campaign_id=None,
                               period=budgets.month_of(datetime.now(UTC).date()), amount=1_000_000,
                               default_monthly=None, default_campaign=None)["ok"]
        assert budgets.settle(conn, held, 1_000_000)
    with pytest.raises(QuotaExceeded) as refused:
        service.start(principal, ChatRequest(message="Plan our Diwali sale"), workspace=None)
    assert refused.value.details["limit"] == "monthly_ai_credits" and refused.value.details["used"] == 1_000
    with connect(migrated_dsn) as conn:
        row = conn.execute("SELECT count(*) AS n FROM public.conversations WHERE workspace_id = %s",
                           (workspace_id,)).fetchone()
    assert row is not None and row["n"] == 0


def test_an_upstash_outage_does_not_take_the_api_down(edge_without_redis: flask.Flask, migrated_dsn: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Past the free tier's 60 requests and 5 starts, with the limiter unreachable: every request is served."""
    _, _, token = _member(migrated_dsn)
    reads = [_call(edge_without_redis, "GET", "/api/v1/plan", token).status_code for _ in range(65)]
    starts = [_call(edge_without_redis, "POST", "/api/v1/campaigns", token,
                    json=_brief(n).model_dump(mode="json")).status_code for n in range(6)]
    assert reads == [200] * 65 and starts == [202] * 6
    assert "rate limiter unavailable" in caplog.text
