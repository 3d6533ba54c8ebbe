"""`POST /api/v1/campaigns/{campaign_id}/cancel`: end a campaign and refund what was paid and not used.

Before payment the campaign just ends `cancelled`; after payment PhonePe refunds the whole amount, or after
partial publication the unpublished channels' share (`shared.campaigns.cancel`). The refund is sent by the
payments function and confirmed through PhonePe's Refund Status API and refund webhook: the answer shows it
as it stands (`PENDING` at first). Cancelling again answers 200 with the same refund; a campaign that
completed, failed or expired is a 409 naming its status.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal
from uuid import UUID

import flask
from pydantic import BaseModel, Field

from shared.api.spec import errors, json_content, uuid_path
from shared.auth import Principal, verify_token
from shared.campaigns.cancel import Cancellation, Canceller, CancelStage
from shared.db.pool import create_pool
from shared.errors import InvalidRequest
from shared.http import Route, json_response
from shared.outbox import Outbox
from shared.queue import qstash_queue
from shared.settings import get_settings
from shared.tracing import langsmith_client

_PREFIX = r"^(?:/api)?/v1"


class RefundView(BaseModel):
    """A PhonePe refund of the campaign's payment."""

    merchant_refund_id: str = Field(description="PhonePe's merchantRefundId: `{merchantOrderId}-R{attempt}`.")
    merchant_order_id: str
    attempt: int
    amount_paise: int
    state: Literal["PENDING", "COMPLETED", "FAILED"]
    reason: Literal["cancelled_before_publication", "cancelled_partially_published", "paid_after_cancel"]
    phonepe_state: str | None = Field(description="What PhonePe last said (PENDING, CONFIRMED, COMPLETED, FAILED).")
    credit_note_id: str | None = Field(description="The GST credit note against the payment's invoice, once issued.")
    created_at: datetime
    completed_at: datetime | None


class CancelResult(BaseModel):
    """What cancelling the campaign did (the same on every repeat, the refund's state aside)."""

    campaign_id: UUID
    status: Literal["cancelled"] = "cancelled"
    cancelled_at: datetime
    stage: CancelStage = Field(description="Where the campaign was: `before_payment`, `before_publication` (full "
                                           "refund), `partially_published` (pro-rata refund) or `published`.")
    channels_total: int
    channels_unpublished: int
    refund: RefundView | None = Field(description="The campaign's latest refund; null when nothing is refunded.")


@lru_cache(maxsize=1)
def service() -> Canceller:
    """This instance's canceller: its own small pool, QStash for the refund's message."""
    settings = get_settings()
    pool = create_pool(settings.database_url, max_size=2)
    return Canceller(pool=pool, outbox=Outbox(pool=pool, queue=qstash_queue(settings)),
                     wait_seconds=settings.cancel_wait_seconds, tracer=langsmith_client(settings),
                     project=settings.langsmith_project, flush_seconds=settings.trace_flush_seconds)


def result_view(outcome: Cancellation) -> CancelResult:
    """The API's view of a cancellation."""
    refund = outcome.refund
    return CancelResult(
        campaign_id=outcome.campaign_id, cancelled_at=outcome.cancelled_at, stage=outcome.stage,
        channels_total=outcome.channels_total, channels_unpublished=outcome.channels_unpublished,
        refund=None if refund is None else RefundView.model_validate({k: refund[k] for k in RefundView.model_fields}))  # type: ignore[literal-required]


def _principal(request: flask.Request) -> Principal:
    return verify_token(request.headers.get("Authorization"), get_settings())


def post_cancel(request: flask.Request, campaign_id: str) -> flask.Response:
    """`POST /api/v1/campaigns/{campaign_id}/cancel`."""
    principal = _principal(request)
    try:
        campaign = UUID(campaign_id)
    except ValueError as exc:
        raise InvalidRequest(f"{campaign_id!r} is not a campaign id; campaign ids are UUIDs.",
                             details={"field": "campaign_id"}) from exc
    return json_response(result_view(service().cancel(principal, campaign)).model_dump(mode="json"))


ROUTES: list[Route] = [
    ("POST", re.compile(_PREFIX + r"/campaigns/(?P<campaign_id>[^/]+)/cancel/?$"), post_cancel),
]

PATHS: dict[str, Any] = {
    "/api/v1/campaigns/{campaign_id}/cancel": {"post": {
        "summary": "Cancel the campaign; refund what was paid and not published (PhonePe refund + credit note)",
        "description": "Repeating it answers the first cancel (its refund as it stands now). 409 for a campaign "
                       "that already completed, failed or expired (`details.status`); 429 with `Retry-After` "
                       "while one of its steps is running.",
        "parameters": [uuid_path("campaign_id")],
        "responses": {"200": {"description": "The campaign is cancelled", "content": json_content(CancelResult)},
                      **errors(400, 401, 404, 409, 429)},
    }},
}
MODELS: tuple[type, ...] = (CancelResult, RefundView)
