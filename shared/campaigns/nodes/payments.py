"""Payments' node: the campaign waits here until PhonePe confirms its funding."""

from __future__ import annotations

from typing import Any

from langgraph.types import interrupt

from shared.campaigns.state import CampaignState


def await_payment(state: CampaignState) -> dict[str, Any]:
    """Wait until PhonePe confirms the campaign's funding (resumed only after Order Status agrees)."""
    amount_paise = int(state["strategy"]["budget_inr"]) * 100
    confirmation = interrupt({"kind": "payment", "amount_paise": amount_paise,
                              "amount_inr": state["strategy"]["budget_inr"]})
    return {"payment": confirmation}
