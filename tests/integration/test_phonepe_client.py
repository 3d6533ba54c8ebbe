"""The product's PhonePe client against the PhonePe emulator, with its token cached in the Upstash Redis emulator.

Covers what a stack restart and a refused token do to a campaign waiting on its payment: the emulator keeps
orders and tokens in Postgres, and the client replaces a token PhonePe refuses (401) exactly once per call,
whether or not its Redis cache is reachable.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import flask
import httpx
import pytest
from upstash_redis import Redis
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.local.emulators import phonepe as phonepe_emulator
from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.upstash_redis import served_over_embedded_redis
from infra.local.serve import RunningServer, serve_in_thread
from shared.errors import UpstreamUnavailable
from shared.integrations.cache import UpstashCache, upstash_cache
from shared.integrations.phonepe import PhonePeClient
from shared.settings import Settings
from tests.integration.harness import make_settings

REDIS_TOKEN = "test-upstash-token"
UNREACHABLE_URL = "http://127.0.0.1:9"
"""Nothing listens on the discard port here, so a connection is refused at once."""


def _serve_phonepe(database_url: str, port: int = 0) -> RunningServer:
    """A new PhonePe emulator instance on `database_url`, mounted under `/phonepe` as in the local stack."""
    app = phonepe_emulator.create_app(EmulatorConfig(database_url=database_url))
    return serve_in_thread(DispatcherMiddleware(flask.Flask("root"), {"/phonepe": app}), port=port)


@pytest.fixture(scope="module")
def redis_rest_url() -> Iterator[str]:
    """The Upstash Redis REST emulator over a real embedded Redis; yields its REST URL."""
    with served_over_embedded_redis(REDIS_TOKEN) as url:
        yield url


@pytest.fixture
def phonepe(fresh_database_dsn: str) -> Iterator[RunningServer]:
    """A PhonePe emulator with no live tokens, so each test counts only the tokens it caused."""
    server = _serve_phonepe(fresh_database_dsn)
    try:
        httpx.delete(f"{server.url}/phonepe/_emulator/tokens").raise_for_status()
        yield server
    finally:
        server.stop()


def _settings(phonepe_url: str, redis_rest_url: str = UNREACHABLE_URL, redis_token: str = REDIS_TOKEN) -> Settings:
    return make_settings(
        "postgresql://unused",
        PHONEPE_BASE_URL=f"{phonepe_url}/phonepe",
        PHONEPE_OAUTH_URL=f"{phonepe_url}/phonepe",
        PHONEPE_CLIENT_ID="MUSE_LOCAL_CLIENT",
        PHONEPE_CLIENT_SECRET="local-phonepe-secret",
        UPSTASH_REDIS_REST_URL=redis_rest_url,
        UPSTASH_REDIS_REST_TOKEN=redis_token,
    )


@pytest.fixture
def shared_cache(redis_rest_url: str) -> Iterator[UpstashCache]:
    """The product's cache on the Upstash emulator, emptied first so no earlier test's token is reused."""
    cache = upstash_cache(_settings(UNREACHABLE_URL, redis_rest_url))
    cache.redis.flushall()
    try:
        yield cache
    finally:
        cache.redis.close()


@contextmanager
def _client(phonepe_url: str, cache: UpstashCache | None) -> Iterator[PhonePeClient]:
    with httpx.Client() as http:
        yield PhonePeClient(http=http, settings=_settings(phonepe_url), cache=cache)


def _order_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def _create(client: PhonePeClient, merchant_order_id: str) -> None:
    order = client.create_order(merchant_order_id=merchant_order_id, amount_paise=49900,
                                redirect_url="http://127.0.0.1:9/return", meta={"udf1": "campaign-42"})
    assert order.state == "PENDING"


def _tokens(phonepe_url: str) -> list[dict[str, int]]:
    response = httpx.get(f"{phonepe_url}/phonepe/_emulator/tokens")
    response.raise_for_status()
    return response.json()["tokens"]


def _direct_token(phonepe_url: str) -> str:
    response = httpx.post(f"{phonepe_url}/phonepe/v1/oauth/token", data={
        "client_id": "MUSE_LOCAL_CLIENT", "client_version": "1", "client_secret": "local-phonepe-secret",
        "grant_type": "client_credentials"})
    response.raise_for_status()
    return f"O-Bearer {response.json()['access_token']}"


class TestRestart:
    def test_orders_and_tokens_survive_a_restart_of_the_emulator(
        self, fresh_database_dsn: str, shared_cache: UpstashCache
    ) -> None:
        """A paid order, its webhook record and every issued token are still there after a new instance starts."""
        merchant_order_id = _order_id("RESTART")
        first = _serve_phonepe(fresh_database_dsn)
        port, url = first.server.server_port, first.url
        httpx.delete(f"{url}/phonepe/_emulator/tokens").raise_for_status()
        try:
            with _client(url, shared_cache) as client:
                _create(client, merchant_order_id)
            order_id = httpx.get(f"{url}/phonepe/_emulator/orders/{merchant_order_id}").json()["order_id"]
            paid = httpx.post(f"{url}/phonepe/pay/{order_id}", json={"outcome": "success"})
            assert paid.json()["state"] == "COMPLETED"
            earlier_token = _direct_token(url)
            tokens_before = _tokens(url)
        finally:
            first.stop()
        assert len(tokens_before) == 2

        second = _serve_phonepe(fresh_database_dsn, port=port)
        try:
            with _client(url, shared_cache) as client:
                status = client.order_status(merchant_order_id)
            direct = httpx.get(f"{url}/phonepe/checkout/v2/order/{merchant_order_id}/status",
                               headers={"Authorization": earlier_token})
            order = httpx.get(f"{url}/phonepe/_emulator/orders/{merchant_order_id}").json()
            tokens_after = _tokens(url)
        finally:
            second.stop()

        assert status is not None
        assert (status.state, status.amount_paise) == ("COMPLETED", 49900)
        assert direct.status_code == 200 and direct.json()["state"] == "COMPLETED"
        assert tokens_after == tokens_before
        assert [w["event"] for w in order["webhooks"]] == ["checkout.order.completed"]


class TestRefusedToken:
    def test_a_revoked_cached_token_is_replaced_exactly_once(
        self, phonepe: RunningServer, shared_cache: UpstashCache
    ) -> None:
        """After PhonePe forgets every token, one refresh serves the status call and the calls after it."""
        merchant_order_id = _order_id("REVOKE")
        with _client(phonepe.url, shared_cache) as client:
            _create(client, merchant_order_id)
            assert len(_tokens(phonepe.url)) == 1
            revoked = httpx.delete(f"{phonepe.url}/phonepe/_emulator/tokens").json()
            assert revoked == {"revoked": 1}

            status = client.order_status(merchant_order_id)
            assert status is not None and status.state == "PENDING"
            assert len(_tokens(phonepe.url)) == 1
            client.order_status(merchant_order_id)
            assert len(_tokens(phonepe.url)) == 1

    def test_create_order_after_a_revocation_creates_one_order(
        self, phonepe: RunningServer, shared_cache: UpstashCache
    ) -> None:
        """The 401 happens before PhonePe creates anything, so the retried create makes exactly one order."""
        first, second = _order_id("REVOKE-A"), _order_id("REVOKE-B")
        with _client(phonepe.url, shared_cache) as client:
            _create(client, first)
            httpx.delete(f"{phonepe.url}/phonepe/_emulator/tokens").raise_for_status()
            _create(client, second)
        orders = httpx.get(f"{phonepe.url}/phonepe/_emulator/orders").json()["orders"]
        assert [o["merchant_order_id"] for o in orders].count(second) == 1
        assert len(_tokens(phonepe.url)) == 1

    def test_a_new_token_refused_too_raises_upstream_unavailable(self) -> None:
        """A PhonePe that refuses even a newly issued token gets one retry, then a retryable error."""
        calls: dict[str, int] = {"token": 0, "pay": 0}
        fake = flask.Flask("refusing-phonepe")

        @fake.post("/v1/oauth/token")
        def token() -> Any:
            calls["token"] += 1
            return {"access_token": f"t{calls['token']}", "token_type": "O-Bearer", "expires_at": 4102444800}

        @fake.post("/checkout/v2/pay")
        def pay() -> Any:
            calls["pay"] += 1
            return {"code": "UNAUTHORIZED", "message": "token refused"}, 401

        settings = make_settings("postgresql://unused", PHONEPE_BASE_URL="http://phonepe.test",
                                 PHONEPE_OAUTH_URL="http://phonepe.test")
        with httpx.Client(transport=httpx.WSGITransport(app=fake)) as http:
            client = PhonePeClient(http=http, settings=settings)
            with pytest.raises(UpstreamUnavailable) as raised:
                _create(client, _order_id("REFUSED"))
        assert raised.value.retryable
        assert calls == {"token": 2, "pay": 2}


class TestCacheOutage:
    @pytest.mark.parametrize(("where", "token"), [("unreachable", REDIS_TOKEN), ("emulator", "wrong-token")])
    def test_calls_work_without_the_cache(
        self, phonepe: RunningServer, redis_rest_url: str, where: str, token: str
    ) -> None:
        """Redis refusing connections, or answering only errors, costs a token call per request, never a failure."""
        url = UNREACHABLE_URL if where == "unreachable" else redis_rest_url
        broken = UpstashCache(redis=Redis(url=url, token=token, rest_retries=0, allow_telemetry=False))
        merchant_order_id = _order_id("NOCACHE")
        try:
            with _client(phonepe.url, broken) as client:
                _create(client, merchant_order_id)
                httpx.delete(f"{phonepe.url}/phonepe/_emulator/tokens").raise_for_status()
                status = client.order_status(merchant_order_id)
        finally:
            broken.redis.close()
        assert status is not None and status.state == "PENDING"
        assert len(_tokens(phonepe.url)) == 1
