"""Step functions in-process against a real Postgres, with deliveries signed exactly as QStash signs them."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import ConnectionPool

from infra.local.emulators.config import DEV_QSTASH_CURRENT_SIGNING_KEY
from infra.local.emulators.qstash import sign
from shared.api.models import CreateCampaign
from shared.api.service import Api
from shared.auth import Principal
from shared.billing.invoices import PaymentInvoicing
from shared.campaigns.graph import STEP_FUNCTIONS, build_campaign_graph
from shared.db.payments import PaymentRepository
from shared.db.pool import connect
from shared.db.threads import ThreadRepository
from shared.db.workspaces import ensure_workspace
from shared.deps import DepsOverrides
from shared.memory.fakes import FakeMemory, fake_memory
from shared.messages import PaymentEvent, StepMessage
from shared.outbox import Outbox
from shared.payments.confirmation import PaymentConfirmer
from shared.queue import qstash_receiver
from shared.runtime.checkpointer import create_checkpointer
from shared.runtime.step import Reply, StepRuntime
from shared.runtime.wiring import build_deps
from shared.settings import Settings
from shared.testing.fakes import CannedSearch, RecordingQueue, ScriptedModel
from shared.testing.payments import FakePhonePe

TEST_ENV = {
    "DATABASE_URL": "postgresql://unused",
    "QSTASH_URL": "http://127.0.0.1:9/qstash",
    "QSTASH_TOKEN": "t",
    "QSTASH_CURRENT_SIGNING_KEY": DEV_QSTASH_CURRENT_SIGNING_KEY,
    "QSTASH_NEXT_SIGNING_KEY": "sig_next_unused_but_long_enough_000000",
    "UPSTASH_REDIS_REST_URL": "http://127.0.0.1:9/redis",
    "UPSTASH_REDIS_REST_TOKEN": "t",
    "GEMINI_API_KEY": "k",
    "TAVILY_API_KEY": "k",
    "PHONEPE_CLIENT_ID": "c",
    "PHONEPE_CLIENT_SECRET": "s",
    "PHONEPE_WEBHOOK_USERNAME": "u",
    "PHONEPE_WEBHOOK_PASSWORD": "p",
    "SUPABASE_JWT_SECRET": "local-secret",
    "MUSE_FUNCTION_URL_TEMPLATE": "https://{name}.functions.test/",
}


def make_settings(dsn: str, **overrides: str) -> Settings:
    """Settings for in-process tests (no network is ever reached)."""
    return Settings(**{**TEST_ENV, "DATABASE_URL": dsn, **overrides})  # type: ignore[arg-type]


@dataclass
class Harness:
    """Every step function of the graph in this process, sharing a real database."""

    pool: ConnectionPool
    dsn: str
    settings: Settings
    model: ScriptedModel = field(default_factory=ScriptedModel)
    search: CannedSearch = field(default_factory=CannedSearch)
    queue: RecordingQueue = field(default_factory=RecordingQueue)
    phonepe: FakePhonePe = field(default_factory=FakePhonePe)
    runtimes: dict[str, StepRuntime] = field(default_factory=dict)
    delivered: int = 0
    delivered_index: int = 0
    memory: FakeMemory = field(default_factory=fake_memory)
    """Where plan memory keeps what it learns (in memory, per harness)."""

    def __post_init__(self) -> None:
        deps = build_deps(self.settings, self.pool, overrides=DepsOverrides(
            model=self.model, web=self.search, knowledge=self.search, memory=self.memory))
        graph = build_campaign_graph().compile(checkpointer=create_checkpointer(self.pool))
        self.outbox = Outbox(pool=self.pool, queue=self.queue)
        confirmer = PaymentConfirmer(payments=PaymentRepository(self.pool), phonepe=self.phonepe,  # type: ignore[arg-type]
                                     outbox=self.outbox, recheck_seconds=self.settings.payment_recheck_seconds,
                                     invoices=PaymentInvoicing(self.settings))
        for name in STEP_FUNCTIONS:
            self.runtimes[name] = StepRuntime(
                function=name, settings=self.settings, graph=graph, deps=deps, threads=ThreadRepository(self.pool),
                outbox=self.outbox, receiver=qstash_receiver(self.settings),
                payments=confirmer if name == "payments" else None)
        self.api = Api(settings=self.settings, pool=self.pool, queue=self.queue, phonepe_factory=lambda: self.phonepe)

    def workspace(self, slug: str | None = None, settings: dict[str, Any] | None = None) -> Principal:
        """A new workspace with one member; returns that member as a principal."""
        slug = slug or f"ws-{uuid.uuid4().hex[:10]}"
        user_id = str(uuid.uuid4())
        with connect(self.dsn) as conn, conn.transaction():
            workspace_id = ensure_workspace(conn, slug=slug, name=slug, user_id=user_id, settings=settings)
        claims = {"sub": user_id, "aud": "authenticated", "role": "authenticated",
                  "app_metadata": {"workspace_id": workspace_id}}
        return Principal(user_id=uuid.UUID(user_id), claims=claims)

    def create(self, principal: Principal, **brief: Any) -> uuid.UUID:
        """Create a campaign through the API service (its start message lands in the queue)."""
        body = CreateCampaign.model_validate({"kind": brief.pop("kind", "campaign"),
                                              "brief": {"title": "Diwali", "objective": "Sell gift boxes", **brief}})
        accepted, _ = self.api.create_campaign(principal, body, idempotency_key=None, workspace=None)
        return accepted.id

    def signed(self, function: str, message: StepMessage, *,
               key: str = DEV_QSTASH_CURRENT_SIGNING_KEY) -> tuple[bytes, str]:
        """The body and `Upstash-Signature` QStash would deliver to `function`."""
        body = json.dumps(message.model_dump(mode="json", exclude_none=True)).encode()
        return body, sign(body, self.settings.function_url(function), key)

    def deliver(self, function: str, message: StepMessage) -> Reply:
        """Deliver one message to one function, signed."""
        body, signature = self.signed(function, message)
        self.delivered += 1
        return self.runtimes[function].handle(body, signature)

    def pump(self, *, limit: int = 40) -> list[Reply]:
        """Deliver undelayed queued messages in order until none is left."""
        replies = []
        while self.delivered_index < len(self.queue.published) and limit:
            function, message, delay = self.queue.published[self.delivered_index]
            self.delivered_index += 1
            if delay:
                continue
            replies.append(self.deliver(function, message))
            limit -= 1
        return replies

    def pay(self, principal: Principal, campaign_id: uuid.UUID, *, state: str = "COMPLETED") -> str:
        """Check out through the API, settle the order at PhonePe, deliver its webhook event, and pump."""
        order = self.api.checkout(principal, campaign_id)
        self.phonepe.settle(order.merchant_order_id, state)
        self.webhook(order.merchant_order_id, state)
        self.pump()
        return order.merchant_order_id

    def webhook(self, merchant_order_id: str, state: str = "COMPLETED") -> Reply:
        """Deliver to `payments` what the PhonePe webhook function queues for a settled order."""
        event = PaymentEvent(merchant_order_id=merchant_order_id, event="checkout.order.completed", state=state)
        return self.deliver("payments", StepMessage(kind="payment_event", payment=event))

    def row(self, campaign_id: uuid.UUID) -> dict[str, Any]:
        """The campaign row, as the service sees it."""
        with connect(self.dsn) as conn:
            return conn.execute("SELECT * FROM public.campaigns WHERE id = %s", (campaign_id,)).fetchone()

    def checkpoints(self, campaign_id: uuid.UUID) -> int:
        """How many checkpoints the thread has."""
        with connect(self.dsn) as conn:
            return conn.execute("SELECT count(*) AS n FROM public.checkpoints WHERE thread_id = %s",
                                (str(campaign_id),)).fetchone()["n"]

    def events(self, campaign_id: uuid.UUID) -> list[str]:
        """Event types of the campaign, in order."""
        with connect(self.dsn) as conn:
            rows = conn.execute("SELECT type FROM public.campaign_events WHERE campaign_id = %s ORDER BY id",
                                (campaign_id,)).fetchall()
        return [r["type"] for r in rows]
