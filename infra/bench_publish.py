"""What exactly-once publishing and GST invoicing cost, printed as `name: value unit` lines.

Publishing (issue 11): emails through the real email adapter (Resend's SDK) to the Resend emulator on loopback,
over a migrated Postgres. The baseline is the bare adapter call; the measured path is one `publish` delivery
through the engine (claim by status and version, `sending` and the content hash committed before the call, the
call, `published` with its event committed after), so the ratio is what exactly-once adds to one platform call.

- `publish_bare_p50_ms` / `publish_delivery_p50_ms` / `_p95_ms`, `publish_overhead_ratio`;
- `publish_duplicate_delivery_p50_ms`: a redelivered message (answered from the row, no platform call);
- `publish_schedule_p50_ms`: execution scheduling one campaign's 4 publications with their delayed messages;
- `invoice_issue_p50_ms` (gapless number + tax + row, one transaction), `invoice_issue_duplicate_p50_ms`,
  `invoice_pdf_render_p50_ms` and `invoice_pdf_bytes` (fpdf2 with the embedded Noto subsets).

Run: `python -m infra.bench_publish` (embedded Postgres, or `DATABASE_URL`).
"""

from __future__ import annotations

import argparse
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from psycopg.types.json import Jsonb
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.bench_memory import postgres
from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.resend import create_app as create_resend
from infra.local.serve import serve_in_thread
from shared.billing.invoices import issue_invoice
from shared.billing.pdf import render_invoice
from shared.db.pool import connect, create_pool, one
from shared.db.workspaces import ensure_workspace
from shared.messages import PublishMessage
from shared.publishing.engine import Publisher, PublishPolicy, utc_now
from shared.publishing.ports import ConnectionProvider, Credentials, Media, PostRequest
from shared.publishing.providers import adapter_for
from shared.settings import Settings
from shared.testing.fakes import RecordingQueue

REQUIRED = {
    "QSTASH_TOKEN": "t", "QSTASH_CURRENT_SIGNING_KEY": "sig_current_unused_0000",
    "QSTASH_NEXT_SIGNING_KEY": "sig_next_unused_0000", "UPSTASH_REDIS_REST_URL": "http://127.0.0.1:9/redis",
    "UPSTASH_REDIS_REST_TOKEN": "t", "GEMINI_API_KEY": "k", "TAVILY_API_KEY": "k", "PHONEPE_CLIENT_ID": "c",
    "PHONEPE_CLIENT_SECRET": "s", "PHONEPE_WEBHOOK_USERNAME": "u", "PHONEPE_WEBHOOK_PASSWORD": "p",
}
EMAIL = {"subject": "Diwali boxes", "preheader": "Order by Friday", "body": "Hello from Chai & Co!", "cta": "Order"}
RECIPIENTS = ["asha@example.in", "vikram@example.in", "meera@example.in"]


def line(name: str, value: float, unit: str) -> None:
    print(f"{name}: {value:.3f} {unit}", flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(action: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Milliseconds one call took, and what it returned."""
    started = time.perf_counter()
    result = action(*args, **kwargs)
    return (time.perf_counter() - started) * 1000, result


class OneConnection:
    """The bench workspace's email connection (the engine's `CredentialsSource`)."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def credentials_for(self, workspace_id: str, provider: ConnectionProvider) -> Credentials:
        return self.credentials

    def refreshed(self, credentials: Credentials) -> Credentials | None:
        return None

    def mark_needs_reconnect(self, connection_id: str, reason: str) -> None:
        raise RuntimeError(f"the bench's connection was refused: {reason}")


class NoAssets:
    """Emails carry no image."""

    def pick(self, workspace_id: str, *, channel: str, text: str) -> str:
        raise RuntimeError("an email needs no asset")

    def media(self, workspace_id: str, asset_id: str) -> Media:
        raise RuntimeError("an email needs no asset")


def released_campaign(dsn: str, workspace_id: str, user_id: str, channels: list[str]) -> str:
    """A paid campaign whose `channels` execution released (what the execute node finds)."""
    campaign_id = str(uuid.uuid4())
    with connect(dsn) as conn, conn.transaction():
        conn.execute("INSERT INTO public.campaigns (id, workspace_id, created_by, kind, brief, status, current_step, "
                     "amount_due_paise) VALUES (%s, %s, %s, 'move', %s, 'running', 'publishing', 10000)",
                     (campaign_id, workspace_id, user_id, Jsonb({"title": "Diwali", "objective": "Sell"})))
        for channel in channels:
            content = {**EMAIL, "subject": f"Diwali boxes {campaign_id[:8]}"} if channel == "email" else \
                {"text": f"Diwali {campaign_id[:8]}"}
            conn.execute("INSERT INTO public.artifacts (campaign_id, workspace_id, channel, variant, content, model, "
                         "status, published_at) VALUES (%s, %s, %s, 'a', %s, 'bench', 'published', now())",
                         (campaign_id, workspace_id, channel, Jsonb(content)))
    return campaign_id


def bench_publishing(dsn: str, runs: int) -> None:
    resend = serve_in_thread(DispatcherMiddleware(NotFound(), {"/resend": create_resend(
        EmulatorConfig(database_url=dsn))}))
    settings = Settings(**{**REQUIRED, "DATABASE_URL": dsn, "RESEND_API_URL": f"{resend.url}/resend"})  # type: ignore[arg-type]
    pool = create_pool(dsn, max_size=4)
    try:
        user_id = str(uuid.uuid4())
        with connect(dsn) as conn, conn.transaction():
            workspace_id = str(ensure_workspace(conn, slug=f"bench-{uuid.uuid4().hex[:8]}", name="Bench",
                                                user_id=user_id))
        credentials = Credentials(connection_id=str(uuid.uuid4()), workspace_id=workspace_id, provider="email",
                                  account_id="hello@chai-co.in", access_token=f"re_bench_{uuid.uuid4().hex}",
                                  settings={"recipients": RECIPIENTS, "from_name": "Chai & Co", "esp": "resend"})
        email = adapter_for("email", settings)
        publisher = Publisher(pool=pool, adapters=lambda provider: email, credentials=OneConnection(credentials),
                              assets=NoAssets(), clock=utc_now, queue=RecordingQueue(), policy=PublishPolicy())

        bare = [timed(email.publish, credentials, PostRequest(
            publication_id=str(uuid.uuid4()), provider="email", channel="email", content=EMAIL,
            content_hash=uuid.uuid4().hex))[0] for _ in range(runs)]

        scheduling, deliveries, duplicates = [], [], []
        for _ in range(runs):
            campaign_id = released_campaign(dsn, workspace_id, user_id, ["email"])
            scheduling.append(timed(publisher.schedule, campaign_id=campaign_id, workspace_id=workspace_id,
                                    draft_keys=["email"], brief={"title": "Diwali"}, workspace_settings={})[0])
            with connect(dsn) as conn:
                row = one(conn.execute("UPDATE public.publications SET scheduled_at = now(), next_attempt_at = now() "
                                       "WHERE campaign_id = %s RETURNING id, version", (campaign_id,)))
            message = PublishMessage(publication_id=row["id"], version=row["version"])
            took, outcome = timed(publisher.fire, message)
            if outcome.get("status") != "published":
                raise RuntimeError(f"the delivery did not publish: {outcome}")
            deliveries.append(took)
            duplicates.append(timed(publisher.fire, message)[0])
        line("publish_bare_p50", pct(bare, 0.5), "ms")
        line("publish_delivery_p50", pct(deliveries, 0.5), "ms")
        line("publish_delivery_p95", pct(deliveries, 0.95), "ms")
        line("publish_overhead_ratio", pct(deliveries, 0.5) / pct(bare, 0.5), "x")
        line("publish_duplicate_delivery_p50", pct(duplicates, 0.5), "ms")
        line("publish_schedule_p50", pct(scheduling, 0.5), "ms")
        line("publish_samples", len(deliveries), "deliveries")
    finally:
        pool.close()
        resend.stop()


def bench_invoices(dsn: str, runs: int) -> None:
    settings = Settings(**{**REQUIRED, "DATABASE_URL": dsn})  # type: ignore[arg-type]
    pool = create_pool(dsn, max_size=2)
    try:
        with connect(dsn) as conn, conn.transaction():
            workspace_id = str(ensure_workspace(conn, slug=f"inv-{uuid.uuid4().hex[:8]}", name="Invoices",
                                                user_id=str(uuid.uuid4())))
        issued, repeated, rendered = [], [], []
        size = 0
        for n in range(runs):
            ref = f"MUSE-bench-{uuid.uuid4().hex[:12]}"
            invoice = {"payment_ref": ref, "amount_paise": 2_000_000 + n, "description": "Campaign: Diwali",
                       "kind": "campaign", "settings": settings}
            took, row = timed(issue_invoice, pool, workspace_id, **invoice)
            issued.append(took)
            repeated.append(timed(issue_invoice, pool, workspace_id, **invoice)[0])
            took, pdf = timed(render_invoice, row)
            rendered.append(took)
            size = len(pdf)
        line("invoice_issue_p50", pct(issued, 0.5), "ms")
        line("invoice_issue_p95", pct(issued, 0.95), "ms")
        line("invoice_issue_duplicate_p50", pct(repeated, 0.5), "ms")
        line("invoice_pdf_render_p50", pct(rendered, 0.5), "ms")
        line("invoice_pdf_bytes", size, "bytes")
    finally:
        pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with postgres() as dsn:
        bench_publishing(dsn, args.runs)
        bench_invoices(dsn, max(10, args.runs // 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
