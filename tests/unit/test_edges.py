"""Edges of the system: messages, webhook auth, settings, error → response mapping, import weight."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import flask
import pytest

from infra.local.stack import REPO_ROOT
from shared.errors import (
    ConfigurationError,
    InvalidRequest,
    PermanentStepError,
    ThreadBusy,
    Unauthorized,
    UpstreamUnavailable,
)
from shared.http import qstash_response
from shared.messages import PaymentEvent, StepMessage
from shared.runtime.step import Reply
from shared.settings import get_settings
from shared.testing.fakes import RecordingQueue
from shared.webhook_auth import expected_authorization, is_authorized
from shared.webhooks import receive_phonepe_webhook
from tests.integration.harness import TEST_ENV, make_settings


class TestMessages:
    def test_dedup_id_is_derived_from_thread_and_checkpoint(self) -> None:
        cid = uuid.uuid4()
        a = StepMessage(kind="continue", campaign_id=cid, expected_checkpoint_id="1f0-abc")
        b = StepMessage(kind="continue", campaign_id=cid, expected_checkpoint_id="1f0-abd")
        assert a.dedup_id() == StepMessage.model_validate(a.model_dump()).dedup_id()
        assert a.dedup_id() != b.dedup_id()
        assert ":" not in a.dedup_id() and " " not in a.dedup_id()

    def test_payment_rechecks_are_distinct_messages(self) -> None:
        event = PaymentEvent(merchant_order_id="MUSE-1", event="checkout.order.completed")
        first = StepMessage(kind="payment_event", payment=event)
        again = StepMessage(kind="payment_event", payment=event.model_copy(update={"recheck": 1}))
        assert first.dedup_id() != again.dedup_id()

    def test_unknown_fields_are_refused(self) -> None:
        with pytest.raises(ValueError):
            StepMessage.model_validate({"kind": "continue", "campaign_id": str(uuid.uuid4()), "extra": 1})


class TestWebhookAuthorization:
    def test_matches_the_sdk_test_vector(self) -> None:
        """PhonePe's SDK tests: SHA256('username:password') in lowercase hex."""
        assert expected_authorization("username", "password") == (
            "bc842c31a9e54efe320d30d948be61291f3ceee4766e36ab25fa65243cd76e0e")

    @pytest.mark.parametrize("header", [None, "", "nope", expected_authorization("user", "other")])
    def test_refuses_anything_else(self, header: str | None) -> None:
        assert not is_authorized(header, username="user", password="pass")

    def test_accepts_upper_case_and_a_scheme_prefix(self) -> None:
        good = expected_authorization("user", "pass")
        assert is_authorized(good.upper(), username="user", password="pass")
        assert is_authorized(f"SHA256 {good}", username="user", password="pass")


class TestWebhookHandoff:
    settings = make_settings("postgresql://unused", PHONEPE_WEBHOOK_USERNAME="hook_user",
                             PHONEPE_WEBHOOK_PASSWORD="hookpass123")
    auth = expected_authorization("hook_user", "hookpass123")

    def _call(self, body: object, auth: str | None) -> tuple[dict, RecordingQueue]:
        queue = RecordingQueue()
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return receive_phonepe_webhook(raw, auth, settings=self.settings, queue=queue), queue

    def test_a_verified_completion_is_queued_for_the_payments_step(self) -> None:
        body = {"event": "checkout.order.completed", "payload": {"merchantOrderId": "MUSE-a-1", "state": "COMPLETED"}}
        result, queue = self._call(body, self.auth)
        assert result["handled"] is True
        [(function, message, delay)] = queue.published
        assert function == "payments" and delay is None
        assert message.payment is not None and message.payment.merchant_order_id == "MUSE-a-1"

    def test_wrong_authorization_is_refused_before_parsing(self) -> None:
        with pytest.raises(Unauthorized):
            self._call(b"not json", expected_authorization("hook_user", "wrong"))

    @pytest.mark.parametrize("body", [b"{", {"event": "checkout.order.completed"},
                                      {"event": "checkout.order.completed", "payload": {"state": "COMPLETED"}}])
    def test_malformed_bodies_are_400(self, body: object) -> None:
        with pytest.raises(InvalidRequest):
            self._call(body, self.auth)

    def test_events_muse_does_not_use_are_acknowledged(self) -> None:
        result, queue = self._call({"event": "paylink.order.completed", "payload": {}}, self.auth)
        assert result["handled"] is False and queue.published == []


class TestSettings:
    def test_a_missing_variable_is_named(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for key in TEST_ENV:
            monkeypatch.delenv(key, raising=False)
        for key, value in TEST_ENV.items():
            if key != "QSTASH_TOKEN":
                monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        try:
            with pytest.raises(ConfigurationError, match="QSTASH_TOKEN"):
                get_settings()
        finally:
            get_settings.cache_clear()

    def test_function_urls_are_json_and_fall_back_to_the_template(self) -> None:
        settings = make_settings("postgresql://x", MUSE_FUNCTION_URLS='{"planner": "https://p.run.app"}')
        assert settings.function_url("planner") == "https://p.run.app"
        assert settings.function_url("qa") == "https://qa.functions.test/"
        with pytest.raises(ValueError, match="MUSE_FUNCTION_URLS"):
            make_settings("postgresql://x", MUSE_FUNCTION_URLS="planner=https://p")


class TestQStashResponses:
    @pytest.mark.parametrize(("error", "status", "non_retryable"), [
        (Unauthorized("bad signature"), 401, False),
        (ThreadBusy("busy", retry_after_seconds=3), 429, False),
        (PermanentStepError("impossible"), 489, True),
        (ConfigurationError("fix GEMINI_API_KEY"), 489, True),
        (UpstreamUnavailable("Gemini 503"), 503, False),
    ])
    def test_errors_map_to_what_qstash_understands(self, error: Exception, status: int, non_retryable: bool) -> None:
        def fail() -> Reply:
            raise error

        with flask.Flask(__name__).app_context():
            response = qstash_response(fail)
        assert response.status_code == status
        assert (response.headers.get("Upstash-NonRetryable-Error") == "true") is non_retryable
        if status == 429:
            assert response.headers["Retry-After"] == "3"
        assert response.get_json()["error"]["message"]


def test_the_webhook_function_does_not_import_the_graph_stack() -> None:
    """The PhonePe webhook must answer within seconds on a cold start: no langgraph, genai or psycopg."""
    code = ("import runpy, sys; runpy.run_path('functions/phonepe_webhook/main.py'); "
            "print(sorted(m for m in ('langgraph', 'google.genai', 'psycopg', 'tavily', 'supabase') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]"
