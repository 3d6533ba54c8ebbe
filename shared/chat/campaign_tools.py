"""Campaign tools of the chat: create a campaign or move, report its status, answer its decision, pay.

Creating and reading act at once, through the same service as the API (`shared.api.service.Api`), so
a chat-created campaign is an ordinary campaign (`GET /api/v1/campaigns` lists it). Creating is
idempotent per turn: the `Idempotency-Key` is derived from the conversation, the turn and the call's
position in it, so a retried or resumed turn answers the campaign it created the first time.

Deciding (approve / reject / edit) and opening a checkout (starting paid work) only *propose*: the
tool stores a pending action with an id in the conversation's state and tells the model to ask. The
action runs only when the user's NEXT message confirms exactly that proposal (see `confirmed`):

- the request's explicit confirmation field carries the pending action's id, or
- the user's whole message is a strict affirmative (`STRICT_AFFIRMATIVES`, e.g. "yes", "confirm",
  "go ahead", "haan") and nothing else.

Any other turn drops the proposal. The model cannot confirm (a call to a proposing tool proposes
again), and neither can a tool result, a web page, a knowledge document or the history: confirmation
is read only from the user's message of the turn and the request's own field.
"""

from __future__ import annotations

import re
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.api.models import CreateCampaign, Decision
from shared.api.service import Api
from shared.auth import Principal
from shared.campaigns.schemas import Brief
from shared.db import campaigns as campaigns_db
from shared.db.pool import as_user
from shared.errors import InvalidRequest, NotFound, QuotaExceeded, Unprocessable
from shared.tools.belt import RetryPolicy, Tool, ToolContext
from shared.writing.specs import Language

PendingKind = Literal["decide", "checkout"]

STRICT_AFFIRMATIVES = frozenset({
    "yes", "y", "yes please", "yes confirm", "confirm", "confirmed", "i confirm", "go ahead", "yes go ahead",
    "proceed", "yes proceed", "do it", "yes do it", "ok", "okay", "ok go ahead", "approve", "approved",
    "sure", "yes sure", "haan", "haan ji", "ji haan", "ha", "theek hai",
})
"""Whole messages (lower-cased, punctuation and extra spaces removed) that confirm the one pending action."""


def _normalized(message: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", message.lower()).split())


def confirmed(pending: dict[str, Any] | None, *, turn: int, message: str, confirm: str | None) -> bool:
    """Whether the user's message of `turn` (or the request's `confirm` field) confirms `pending`.

    A proposal of turn N can be confirmed only in turn N + 1; `confirm` must name it exactly, else the
    message must be a strict affirmative and no `confirm` field may name another action.
    """
    if not pending or pending.get("proposed_turn") != turn - 1:
        return False
    if confirm is not None:
        return secrets.compare_digest(str(confirm), str(pending.get("id", "")))
    return _normalized(message) in STRICT_AFFIRMATIVES


class CampaignService(Protocol):
    """What the chat may do with campaigns, as the user (row-level security applies)."""

    def create(self, kind: str, brief: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        """Create the campaign (once per key); its id, status and links."""
        ...

    def status(self, campaign_id: str) -> dict[str, Any]:
        """Status, current step, pending decision, failure reason, payment and recent events."""
        ...

    def decide(self, campaign_id: str, decision: Decision) -> dict[str, Any]:
        """Answer the pending decision."""
        ...

    def checkout(self, campaign_id: str) -> dict[str, Any]:
        """Create (once) the PhonePe order and return its redirect URL."""
        ...


@dataclass
class ApiCampaigns:
    """`CampaignService` over the API's service, acting as `principal` in `workspace_id`."""

    api: Api
    principal: Principal
    workspace_id: str
    recent_events: int = 8

    def create(self, kind: str, brief: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        body = CreateCampaign.model_validate({"kind": kind, "brief": brief})
        try:
            accepted, created = self.api.create_campaign(self.principal, body, idempotency_key=idempotency_key,
                                                         workspace=self.workspace_id)
        except Unprocessable as exc:
            # The same turn, retried, asked with different words: the first campaign stands.
            existing = (exc.details or {}).get("campaign_id")
            if existing is None:
                raise
            return {"campaign_id": existing, "created": False, **self.status(existing)}
        return {"campaign_id": str(accepted.id), "created": created, "status": accepted.status,
                "links": accepted.links}

    def status(self, campaign_id: str) -> dict[str, Any]:
        key = _campaign_uuid(campaign_id)
        view = self.api.get_campaign(self.principal, key).model_dump(mode="json")
        with as_user(self.api.pool, self.principal.claims) as conn:
            events = campaigns_db.events_after(conn, key, 0, limit=500)
        return {
            "campaign_id": view["id"], "kind": view["kind"], "status": view["status"],
            "current_step": view["current_step"], "title": view["brief"].get("title"),
            "pending_decision": view["pending_decision"], "failure_reason": view["failure_reason"],
            "payment": view["payment"], "artifacts": len(view["artifacts"] or []),
            "recent_events": [{"type": e["type"], "at": e["created_at"].isoformat()}
                              for e in events[-self.recent_events:]],
        }

    def decide(self, campaign_id: str, decision: Decision) -> dict[str, Any]:
        accepted = self.api.decide(self.principal, _campaign_uuid(campaign_id), decision)
        return accepted.model_dump(mode="json")

    def checkout(self, campaign_id: str) -> dict[str, Any]:
        return self.api.checkout(self.principal, _campaign_uuid(campaign_id)).model_dump(mode="json")


def _campaign_uuid(campaign_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(campaign_id)
    except ValueError as exc:
        raise NotFound(f"{campaign_id!r} is not a campaign id; use the campaign_id a campaign tool returned") from exc


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateCampaignInput(_Strict):
    """Create a campaign (full plan) or a move (a smaller one) from what the user asked for, in the language the
    user wants its copy in (`brief.language`, `brief.channel_languages`)."""

    kind: Literal["campaign", "move"] = "move"
    brief: Brief


class CampaignRef(_Strict):
    """One campaign of the workspace."""

    campaign_id: str = Field(min_length=1, max_length=64, description="The campaign's id (a UUID).")


class DecideInput(_Strict):
    """Propose an answer to the campaign's pending decision; the user must confirm it in their next message."""

    campaign_id: str = Field(min_length=1, max_length=64)
    action: Literal["approve", "reject", "edit"]
    feedback: str | None = Field(default=None, max_length=4000, description="Required to reject.")
    edits: dict[str, Any] | None = Field(default=None, description="Required to edit: the changed fields.")


class CampaignToolOutput(BaseModel):
    """What a campaign tool reports back to the model."""

    model_config = ConfigDict(extra="allow")


@dataclass
class Proposals:
    """The turn's proposal box: the last action proposed wins (one pending action per conversation)."""

    turn: int
    pending: dict[str, Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def propose(self, kind: PendingKind, campaign_id: str, **details: Any) -> dict[str, Any]:
        action = {"id": f"act_{secrets.token_hex(6)}", "kind": kind, "campaign_id": campaign_id,
                  "proposed_turn": self.turn, **details}
        with self._lock:
            self.pending = action
        return action


def _output(**values: Any) -> CampaignToolOutput:
    return CampaignToolOutput.model_validate(values)


def describe(action: dict[str, Any]) -> str:
    """One line saying what a pending action will do, for the model and the user."""
    if action["kind"] == "checkout":
        return f"open the PhonePe checkout for campaign {action['campaign_id']} (starts paid work)"
    verb = {"approve": "approve", "reject": "reject", "edit": "edit"}[action["action"]]
    return (f"{verb} decision {action['decision_id']} ({action.get('decision_kind')}) of campaign "
            f"{action['campaign_id']}")


def execute(service: CampaignService, action: dict[str, Any]) -> dict[str, Any]:
    """Run a confirmed pending action through the service; the result the model is told."""
    if action["kind"] == "checkout":
        return {"checkout": service.checkout(action["campaign_id"])}
    decision = Decision(decision_id=action["decision_id"], action=action["action"], feedback=action.get("feedback"),
                        edits=action.get("edits"))
    return {"decision": service.decide(action["campaign_id"], decision)}


def campaign_tools(service: CampaignService, proposals: Proposals, *, idempotency_key: Callable[[], str],
                   default_language: Language = "en") -> list[Tool[Any, Any]]:
    """The four campaign tools of one turn; `idempotency_key()` gives each create call of the turn its key.

    A created brief carries the call's `language` and `channel_languages`; a brief naming no language is written
    in `default_language` (the brand kit's primary one)."""

    def create(args: CreateCampaignInput, ctx: ToolContext) -> CampaignToolOutput:
        brief = args.brief.model_dump(mode="json", exclude_none=True)
        if "language" not in args.brief.model_fields_set:
            brief["language"] = default_language
        try:
            result = service.create(args.kind, brief, idempotency_key=idempotency_key())
        except QuotaExceeded as exc:
            return _output(created=False, limit=exc.details.get("limit"), retry_after_seconds=exc.retry_after_seconds,
                           message=f"Not started: {exc.message} Tell the user; do not try again in this turn.")
        return CampaignToolOutput.model_validate(result)

    def status(args: CampaignRef, ctx: ToolContext) -> CampaignToolOutput:
        return CampaignToolOutput.model_validate(service.status(args.campaign_id))

    def decide(args: DecideInput, ctx: ToolContext) -> CampaignToolOutput:
        try:
            Decision(decision_id="pending", action=args.action, feedback=args.feedback, edits=args.edits)
        except ValidationError as exc:
            raise InvalidRequest(f"decide_campaign: {exc.errors()[0]['msg']}") from exc
        current = service.status(args.campaign_id)
        pending = current.get("pending_decision")
        if not pending:
            return _output(proposed=False, status=current["status"],
                           message="The campaign has no pending decision; nothing to answer.")
        action = proposals.propose("decide", args.campaign_id, decision_id=pending["id"],
                                   decision_kind=pending.get("kind"), action=args.action, feedback=args.feedback,
                                   edits=args.edits)
        return _output(proposed=True, action_id=action["id"], pending_decision=pending,
                       message=f"Nothing is decided yet. Ask the user to confirm that you should {describe(action)}; "
                               "it runs only if their next message confirms it.")

    def checkout(args: CampaignRef, ctx: ToolContext) -> CampaignToolOutput:
        current = service.status(args.campaign_id)
        if current["status"] != "awaiting_payment":
            return _output(proposed=False, status=current["status"],
                           message="Checkout opens once the campaign awaits payment.")
        action = proposals.propose("checkout", args.campaign_id)
        return _output(proposed=True, action_id=action["id"],
                       message=f"No payment is started yet. Ask the user to confirm that you should "
                               f"{describe(action)}; it runs only if their next message confirms it.")

    quick = RetryPolicy(max_attempts=1)
    return [
        Tool("create_campaign", "Create a campaign (kind 'campaign') or a smaller move (kind 'move') from the "
             "user's request; it then runs on its own (research, strategy for approval, content, payment).",
             CreateCampaignInput, CampaignToolOutput, create, timeout_seconds=15, retry=quick),
        Tool("campaign_status", "Report a campaign's status, current step, pending decision, payment and "
             "recent events.", CampaignRef, CampaignToolOutput, status, timeout_seconds=10,
             retry=RetryPolicy(max_attempts=2)),
        Tool("decide_campaign", "Propose an answer (approve, reject with feedback, edit) to a campaign's pending "
             "decision. It only proposes: the user must confirm in their next message.", DecideInput,
             CampaignToolOutput, decide, timeout_seconds=10, retry=quick),
        Tool("checkout_link", "Propose opening the PhonePe checkout of a campaign awaiting payment. It only "
             "proposes: the user must confirm in their next message, then the link is returned.", CampaignRef,
             CampaignToolOutput, checkout, timeout_seconds=10, retry=quick),
    ]


CAMPAIGN_TOOLS = ("create_campaign", "campaign_status", "decide_campaign", "checkout_link")
