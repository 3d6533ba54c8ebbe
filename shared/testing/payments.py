"""An in-memory PhonePe with the product client's interface, for in-process tests of the payment path.

End-to-end tests use the wire emulator (`infra/local/emulators/phonepe.py`) through the real client;
this fake lets in-process tests settle orders and disagree with the webhook on purpose.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from shared.integrations.phonepe import CheckoutOrder, OrderAlreadyExists, OrderStatus


@dataclass
class FakePhonePe:
    """Orders by merchantOrderId; `settle` plays the payer, `status_override` a lagging or lying status API."""

    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    status_override: dict[str, tuple[str, int]] = field(default_factory=dict)
    status_calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create_order(self, *, merchant_order_id: str, amount_paise: int, redirect_url: str,
                     meta: dict[str, str] | None = None) -> CheckoutOrder:
        with self._lock:
            if merchant_order_id in self.orders:
                raise OrderAlreadyExists(f"Order {merchant_order_id!r} already exists.")
            order_id = f"OMO{uuid.uuid4().hex[:16]}"
            self.orders[merchant_order_id] = {"order_id": order_id, "state": "PENDING", "amount": amount_paise}
        return CheckoutOrder(order_id=order_id, state="PENDING", redirect_url=f"https://pay.test/{order_id}",
                             expire_at_ms=0)

    def order_status(self, merchant_order_id: str) -> OrderStatus | None:
        with self._lock:
            self.status_calls += 1
            order = self.orders.get(merchant_order_id)
            if order is None:
                return None
            state, amount = self.status_override.get(merchant_order_id, (order["state"], order["amount"]))
            return OrderStatus(state=state, amount_paise=amount, order_id=order["order_id"],
                               raw={"state": state, "amount": amount})

    def settle(self, merchant_order_id: str, state: str = "COMPLETED") -> None:
        """The payer finishes (or abandons) the payment page."""
        with self._lock:
            self.orders[merchant_order_id]["state"] = state
