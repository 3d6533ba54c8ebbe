"""What a campaign's pending decisions accept: the answer a resume carries, and the rule when nobody answers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from langgraph.types import interrupt

from shared.domain import HUMAN_DECISIONS, AppliedDecision, ConfirmedPayment, PendingDecision
from shared.errors import BudgetExceeded, PermanentStepError
from shared.ports import WorkspacePolicy

F = TypeVar("F", bound=Callable[..., Any])


def budgeted(action: F) -> F:
    """The node `action`, pausing on a `budget` decision whenever one of its calls would pass an AI-spend cap.

    Nothing of the refused call was spent. The decision's payload names the cap (`scope`, amounts in
    micro-USD and the message); approving it (after raising the cap, `PUT /api/v1/budgets`) runs the node
    again, and a cap still too low pauses it again, never silently; rejecting it cancels the campaign.
    On resume LangGraph re-runs the node from its start, so each pause is one `interrupt` of this loop.
    """

    @functools.wraps(action)
    def node(*args: Any, **kwargs: Any) -> Any:
        while True:
            try:
                return action(*args, **kwargs)
            except BudgetExceeded as exc:
                answer = interrupt({"kind": "budget", "node": action.__name__, "message": exc.message,
                                    **{k: v for k, v in exc.details.items() if k != "retry_after_seconds"}})
                if (answer or {}).get("action") == "reject":
                    raise PermanentStepError("Cancelled at the budget decision: the AI-spend cap was not raised. "
                                             f"{exc.message}") from exc

    return node  # type: ignore[return-value]  # functools.wraps keeps the signature LangGraph inspects


def user_answer(pending: PendingDecision, decision_id: str | None,
                resume: dict[str, Any] | None) -> AppliedDecision | None:
    """The user's answer to `pending`, or None when the message answers another (or no human) decision."""
    if pending["kind"] not in HUMAN_DECISIONS or decision_id != pending["id"] or resume is None:
        return None
    action = resume.get("action", "approve")
    if action not in ("approve", "reject", "edit"):
        return None
    value = {**resume, "source": "user", "decision_id": pending["id"]}
    return AppliedDecision(id=pending["id"], kind=pending["kind"], action=action, payload=value, source="user")


def on_timeout(pending: PendingDecision, policy: WorkspacePolicy) -> AppliedDecision:
    """The workspace rule for a decision nobody answered in time: auto-approve a strategy within the
    auto-approve budget, expire everything else."""
    limit = policy.auto_approve_max_budget_inr
    budget = pending["payload"].get("budget_inr")
    if pending["kind"] == "strategy_approval" and limit is not None and budget is not None and budget <= limit:
        value = {"action": "approve", "source": "timeout", "decision_id": pending["id"]}
        return AppliedDecision(id=pending["id"], kind=pending["kind"], action="approve", payload=value,
                               source="timeout")
    reason = {"rule": "expire", "budget_inr": budget, "auto_approve_max_budget_inr": limit}
    return AppliedDecision(id=pending["id"], kind=pending["kind"], action="expire", payload=reason, source="timeout")


def payment_answer(pending: PendingDecision, payment: ConfirmedPayment, campaign_id: object) -> dict[str, Any] | None:
    """The resume value of a payment interrupt, only for a confirmed payment of this campaign and amount due."""
    if pending["kind"] != "payment" or payment.campaign_id != campaign_id:
        return None
    if payment.amount_paise != int(pending["payload"].get("amount_paise", -1)):
        return None
    return {"status": "paid", "merchant_order_id": payment.merchant_order_id, "amount_paise": payment.amount_paise,
            "phonepe_order_id": payment.phonepe_order_id, "decision_id": pending["id"]}
