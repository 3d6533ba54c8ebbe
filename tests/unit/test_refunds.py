"""Refund arithmetic and identities, and how refund webhooks enter the step chain."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from shared.db.refunds import merchant_refund_id
from shared.domain import CampaignStatus
from shared.errors import InvalidRequest
from shared.messages import StepMessage
from shared.payments.refunds import prorata_refund_paise, refund_message
from shared.settings import Settings
from shared.testing.fakes import RecordingQueue
from shared.webhooks import receive_phonepe_webhook

DEDUP_ID = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
"""The outbox's check on a QStash deduplication id."""


@pytest.mark.parametrize(("amount", "total", "unpublished", "expected"), [
    (5_000_000, 2, 2, 5_000_000),
    (5_000_000, 2, 1, 2_500_000),
    (99_999, 3, 2, 66_666),
    (100_001, 3, 1, 33_333),
    (1_000, 7, 3, 428),
    (123_457, 4, 0, 0),
    (50_000, 0, 0, 50_000),
])
def test_prorata_refund_is_the_unpublished_share_rounded_down_to_the_paisa(amount: int, total: int,
                                                                           unpublished: int, expected: int) -> None:
    """The refund is floor(amount × unpublished / total) paise; with no channels at all, everything."""
    assert prorata_refund_paise(amount, total, unpublished) == expected


def test_prorata_refund_never_exceeds_the_share() -> None:
    """For every split of 1..6 channels the refund and what is kept add up to the amount, and the refund is
    within one paisa below the exact share."""
    for total in range(1, 7):
        for unpublished in range(total + 1):
            refund = prorata_refund_paise(1_234_567, total, unpublished)
            assert 0 <= 1_234_567 * unpublished - refund * total < total


def test_prorata_refund_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError, match="not a share"):
        prorata_refund_paise(10_000, 2, 3)


def test_merchant_refund_ids_are_derived_and_fit_phonepe() -> None:
    """The id is the order id and the attempt (stable across retries); an order id too long for PhonePe's 63
    characters falls back to a digest, still per attempt."""
    assert merchant_refund_id("MUSE-0123456789abcdef01234567-1", 1) == "MUSE-0123456789abcdef01234567-1-R1"
    assert merchant_refund_id("MUSE-0123456789abcdef01234567-1", 2) == "MUSE-0123456789abcdef01234567-1-R2"
    long_order = "O" * 63
    first, second = merchant_refund_id(long_order, 1), merchant_refund_id(long_order, 2)
    assert first == f"MUSER-{hashlib.sha256(long_order.encode()).hexdigest()[:40]}-1" and first != second
    assert all(len(i) <= 63 and re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in (first, second))


def test_refund_messages_deduplicate_per_trigger() -> None:
    """A webhook and its replay share a deduplication id; each re-check has its own; all fit the outbox."""
    webhook = StepMessage(kind="refund_event", refund={"merchant_refund_id": "MUSE-x-1-R1",  # type: ignore[arg-type]
                                                       "event": "pg.refund.completed", "state": "COMPLETED"})
    ids = {webhook.dedup_id(), refund_message("MUSE-x-1-R1").dedup_id(),
           refund_message("MUSE-x-1-R1", event="reconcile", recheck=1).dedup_id(),
           refund_message("MUSE-x-1-R1", event="reconcile", recheck=2).dedup_id()}
    assert len(ids) == 4 and all(DEDUP_ID.match(i) for i in ids)
    assert webhook.model_copy().dedup_id() == webhook.dedup_id()
    with pytest.raises(ValueError, match="needs `refund`"):
        StepMessage(kind="refund_event")


def test_cancelled_is_terminal() -> None:
    assert CampaignStatus.CANCELLED.terminal and not CampaignStatus.AWAITING_PAYMENT.terminal


def _settings() -> Settings:
    return Settings(DATABASE_URL="postgresql://unused", QSTASH_TOKEN="t", QSTASH_CURRENT_SIGNING_KEY="k" * 32,  # type: ignore[call-arg]
                    QSTASH_NEXT_SIGNING_KEY="n" * 32, UPSTASH_REDIS_REST_URL="http://127.0.0.1:9",
                    UPSTASH_REDIS_REST_TOKEN="t", GEMINI_API_KEY="k", TAVILY_API_KEY="k", PHONEPE_CLIENT_ID="c",
                    PHONEPE_CLIENT_SECRET="s", PHONEPE_WEBHOOK_USERNAME="muse_webhook",
                    PHONEPE_WEBHOOK_PASSWORD="localpass123", SUPABASE_JWT_SECRET="x")


AUTHORIZATION = hashlib.sha256(b"muse_webhook:localpass123").hexdigest()


@pytest.mark.parametrize("event", ["pg.refund.completed", "pg.refund.failed", "pg.refund.accepted"])
def test_refund_webhooks_are_queued_for_the_payments_step(event: str) -> None:
    """A verified `pg.refund.*` webhook becomes a `refund_event` for `payments`, naming the merchantRefundId."""
    queue = RecordingQueue()
    body = json.dumps({"event": event, "payload": {"merchantRefundId": "MUSE-x-1-R1", "state": "COMPLETED",
                                                   "originalMerchantOrderId": "MUSE-x-1", "amount": 100}}).encode()
    assert receive_phonepe_webhook(body, AUTHORIZATION, settings=_settings(), queue=queue)["handled"] is True
    [(function, message, delay)] = queue.published
    assert (function, message.kind, delay) == ("payments", "refund_event", None)
    assert (message.refund.merchant_refund_id, message.refund.event) == ("MUSE-x-1-R1", event)


def test_a_refund_webhook_without_its_id_is_a_400() -> None:
    body = json.dumps({"event": "pg.refund.completed", "payload": {"state": "COMPLETED"}}).encode()
    with pytest.raises(InvalidRequest, match="merchantRefundId"):
        receive_phonepe_webhook(body, AUTHORIZATION, settings=_settings(), queue=RecordingQueue())
