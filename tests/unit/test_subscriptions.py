"""The pure parts of UPI Autopay plans: the monthly debit, the period arithmetic, the ids sent to PhonePe and
the routing of a verified webhook into a `SubscriptionMessage`."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from shared.subscriptions.lifecycle import add_month, amount_paise, cycle_order_id, subscription_ids
from shared.subscriptions.messages import SubscriptionMessage, webhook_message


def test_the_monthly_debit_is_the_price_plus_gst_in_paise() -> None:
    assert amount_paise("pro", Decimal("18")) == 294_882
    assert amount_paise("agency", Decimal("18")) == 1_179_882
    assert amount_paise("pro", Decimal("0")) == 249_900


@pytest.mark.parametrize(("start", "end"), [
    (datetime(2026, 1, 31, 9, 30, tzinfo=UTC), datetime(2026, 2, 28, 9, 30, tzinfo=UTC)),
    (datetime(2028, 1, 31, tzinfo=UTC), datetime(2028, 2, 29, tzinfo=UTC)),
    (datetime(2026, 12, 15, tzinfo=UTC), datetime(2027, 1, 15, tzinfo=UTC)),
])
def test_a_period_is_one_calendar_month(start: datetime, end: datetime) -> None:
    assert add_month(start) == end


def test_ids_are_derived_and_fit_phonepe_limits() -> None:
    reference, setup = subscription_ids("0b3f8c3e-2a4d-4c55-9d5e-1f2a3b4c5d6e", 12)
    assert reference == "MS0b3f8c3e2a4d4c559d5e1f2a3b4c5d6e-12" and setup == f"{reference}-S"
    order = cycle_order_id(reference, 120, 3)
    assert order == f"{reference}-C120A3" and len(order) <= 63
    SubscriptionMessage(kind="order_check", merchant_subscription_id=reference, merchant_order_id=order)


def test_a_subscription_webhook_becomes_a_message_naming_mandate_and_order() -> None:
    message = webhook_message("subscription.redemption.order.completed", {
        "merchantOrderId": "MSx-1-C1A1", "state": "COMPLETED",
        "paymentFlow": {"type": "SUBSCRIPTION_REDEMPTION", "merchantSubscriptionId": "MSx-1"}})
    assert message is not None
    assert (message.kind, message.merchant_subscription_id, message.merchant_order_id, message.state) == (
        "event", "MSx-1", "MSx-1-C1A1", "COMPLETED")
    assert ":" not in message.dedup_id() and " " not in message.dedup_id()
    assert webhook_message("checkout.order.completed", {"merchantOrderId": "o"}) is None
    with pytest.raises(ValueError, match="merchantSubscriptionId"):
        webhook_message("subscription.cancelled", {"state": "CANCELLED"})


def test_duplicates_share_a_dedup_id_and_rechecks_do_not() -> None:
    first = SubscriptionMessage(kind="redeem", merchant_subscription_id="MSx-1", cycle=2, attempt=1)
    assert first.dedup_id() == SubscriptionMessage.model_validate(first.model_dump()).dedup_id()
    assert first.dedup_id() != first.model_copy(update={"recheck": 1}).dedup_id()
    assert first.dedup_id() != first.model_copy(update={"attempt": 2}).dedup_id()
