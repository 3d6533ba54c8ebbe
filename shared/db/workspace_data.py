"""Everything a workspace stored, read for export and erased on request (issue 7, India's DPDP Act).

Both read the catalog rather than a hand-kept list: every table of `public` with a `workspace_id`
column is the workspace's data, so a table added later is exported and erased without a change here.
What the law or the product keeps is named once, in `RETAINED_TABLES`. LangGraph's checkpoint tables
have no workspace column: they are reached through the thread ids of the workspace's campaigns and
conversations.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final, NamedTuple

from psycopg import sql

from shared.db.pool import Conn

RETAINED_TABLES: Final = frozenset({"payments", "refunds", "invoices", "credit_notes", "subscriptions",
                                    "subscription_cycles", "audit_log", "workspace_members", "workspace_privacy",
                                    "workspace_plans", "knowledge_ingest_usage", "spend_periods",
                                    "spend_reservations"})
"""Kept by an erasure: payment and tax records (the law: payments and their refunds, invoices and credit notes,
which refuse deletes; UPI Autopay mandates and their monthly debits, which PhonePe keeps collecting until
cancelled), the audit log (append-only), and what governs the workspace rather than describes anyone:
membership, its personal-data policy, its plan tier (paid for), the ingestion quota's counts and the AI-spend
ledger's months and reservations (ids and numbers only; erasing them would hand a day's quota or a month's spend
and credits back)."""
CHECKPOINT_TABLES: Final = ("checkpoint_writes", "checkpoint_blobs", "checkpoints")
"""LangGraph's checkpointer tables, keyed by `thread_id` (a campaign's or a conversation's id)."""

_ROLE = """
SELECT role FROM public.workspace_members WHERE workspace_id = %s AND user_id = auth.uid()
"""
_TABLES = """
SELECT c.relname AS name,
    coalesce(array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attgenerated <> ''), '{}') AS generated
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p')
    AND EXISTS (SELECT 1 FROM pg_attribute w WHERE w.attrelid = c.oid AND w.attname = 'workspace_id'
                AND NOT w.attisdropped)
GROUP BY c.relname
ORDER BY c.relname
"""
_REFERENCES = """
SELECT child.relname AS child, parent.relname AS parent
FROM pg_constraint c
JOIN pg_class child ON child.oid = c.conrelid
JOIN pg_class parent ON parent.oid = c.confrelid
WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace AND c.conrelid <> c.confrelid
"""
_SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
_WORKSPACE = """
SELECT id::text AS id, slug, name, settings, created_at FROM public.workspaces WHERE id = %s
"""
_LOCK_CAMPAIGNS = """
SELECT id::text AS id, coalesce(lease_until > now(), false) AS running
FROM public.campaigns WHERE workspace_id = %s ORDER BY id FOR UPDATE
"""
_CONVERSATIONS = "SELECT id::text AS id FROM public.conversations WHERE workspace_id = %s"
_INGEST_OUTBOX = """
DELETE FROM public.step_outbox o
WHERE o.campaign_id IS NULL AND o.function = 'ingest' AND o.message ->> 'document_id' IN (
    SELECT d.id::text FROM public.knowledge_documents d WHERE d.workspace_id = %s)
"""


def member_role(conn: Conn, workspace_id: str) -> str | None:
    """The caller's role in the workspace (`owner`, `member`), on the caller's RLS connection; None if none."""
    row = conn.execute(_ROLE, (workspace_id,)).fetchone()
    return None if row is None else str(row["role"])


def workspace_tables(conn: Conn) -> dict[str, list[str]]:
    """Every `public` table with a `workspace_id` column → its generated columns (left out of exports)."""
    return {r["name"]: list(r["generated"]) for r in conn.execute(_TABLES)}


def begin_snapshot(conn: Conn) -> None:
    """Make the open transaction one read-only snapshot (its first statement), so an export is consistent."""
    conn.execute(_SNAPSHOT)


def workspace_row(conn: Conn, workspace_id: str) -> dict[str, Any] | None:
    """The workspace itself: id, slug, name, settings, created_at."""
    return conn.execute(_WORKSPACE, (workspace_id,)).fetchone()


def table_rows(conn: Conn, table: str, workspace_id: str, *, leave_out: list[str],
               batch: int = 500) -> Iterator[dict[str, Any]]:
    """The workspace's rows of `table` as JSON objects, streamed through a server-side cursor.

    Runs inside the caller's transaction; `leave_out` names columns to drop (generated ones).
    """
    query = sql.SQL("SELECT to_jsonb(t) - %s::text[] AS row FROM {} t WHERE t.workspace_id = %s").format(
        sql.Identifier("public", table))
    with conn.cursor(name=f"export_{table}") as cur:
        cur.itersize = batch
        cur.execute(query, (leave_out, workspace_id))
        for record in cur:
            yield record["row"]


class Erased(NamedTuple):
    """What `erase` did."""

    rows: dict[str, int]
    """Table → rows deleted."""
    threads: list[str]
    """Thread ids whose checkpoints were deleted (campaigns, conversations)."""
    running: int
    """Campaigns whose step held a live lease: it cannot commit now, but what its nodes write on their own
    connections before they stop (memory they learn) may land after this transaction."""


def erase(conn: Conn, workspace_id: str) -> Erased:
    """Delete the workspace's data in the caller's transaction.

    The workspace's campaign rows are locked first: a step of one of them that is committing holds
    the lock until its commit (whose writes this then deletes); one committing later finds its
    campaign gone and cannot (`StepWrites` fences on the row). The sweeper finds nothing to redrive and
    deliveries still queued for these campaigns are acknowledged as unknown.
    """
    locked = conn.execute(_LOCK_CAMPAIGNS, (workspace_id,)).fetchall()
    threads = [r["id"] for r in locked] + [r["id"] for r in conn.execute(_CONVERSATIONS, (workspace_id,))]
    counts: dict[str, int] = {}
    for table in CHECKPOINT_TABLES:
        counts[table] = conn.execute(sql.SQL("DELETE FROM {} WHERE thread_id = ANY(%s)").format(
            sql.Identifier("public", table)), (threads,)).rowcount
    counts["step_outbox"] = conn.execute(_INGEST_OUTBOX, (workspace_id,)).rowcount
    tables = [t for t in workspace_tables(conn) if t not in RETAINED_TABLES]
    for table in children_first(conn, tables):
        counts[table] = conn.execute(sql.SQL("DELETE FROM {} WHERE workspace_id = %s").format(
            sql.Identifier("public", table)), (workspace_id,)).rowcount
    return Erased(rows=counts, threads=threads, running=sum(1 for r in locked if r["running"]))


def children_first(conn: Conn, tables: list[str]) -> list[str]:
    """`tables` ordered so a table referencing another (by foreign key) comes before it.

    Deleting the referencing rows first works whatever the foreign key's `ON DELETE` says (a later
    table may restrict rather than cascade) and counts every table's rows where they were deleted.
    """
    wanted = set(tables)
    referenced_by: dict[str, set[str]] = {table: set() for table in tables}
    for row in conn.execute(_REFERENCES):
        if row["child"] in wanted and row["parent"] in wanted:
            referenced_by[row["parent"]].add(row["child"])
    ordered: list[str] = []
    remaining = set(tables)
    while remaining:
        ready = sorted(t for t in remaining if not referenced_by[t] & remaining) or sorted(remaining)
        ordered += ready
        remaining -= set(ready)
    return ordered
