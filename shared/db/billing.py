"""SQL of GST billing: billing profiles, invoices, credit notes and their gapless number series.

Issuing runs on a service connection inside the caller's transaction: `lock_document` serializes every
attempt for one payment or refund (duplicate webhooks, concurrent calls), `next_number` locks the
series' counter row FOR UPDATE and advances it, and the insert follows, so a rolled-back transaction
returns its number and a committed one holds it exactly once.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, TypedDict, cast
from uuid import UUID

from psycopg.types.json import Jsonb

from shared.db.pool import Conn, one

Series = Literal["invoice", "credit_note"]


class ProfileRow(TypedDict):
    """A workspace's billing profile as stored."""

    workspace_id: str
    legal_name: str
    address: str
    country: str
    state_code: str | None
    gstin: str | None
    email: str
    updated_at: datetime


class InvoiceRow(TypedDict):
    """One tax invoice as stored (`supplier`, `recipient`: the parties as printed)."""

    id: UUID
    workspace_id: UUID
    payment_ref: str
    kind: str
    campaign_id: UUID | None
    supplier_gstin: str
    financial_year: str
    seq: int
    number: str
    issued_at: datetime
    invoice_date: date
    supplier: dict[str, Any]
    recipient: dict[str, Any]
    place_of_supply: str | None
    supply_type: str
    description: str
    sac: str
    rate_percent: Decimal
    taxable_paise: int
    cgst_paise: int
    sgst_paise: int
    igst_paise: int
    total_paise: int
    total_in_words: str
    pdf_path: str | None


class CreditNoteRow(TypedDict):
    """One credit note as stored."""

    id: UUID
    invoice_id: UUID
    workspace_id: UUID
    refund_id: str
    supplier_gstin: str
    financial_year: str
    seq: int
    number: str
    issued_at: datetime
    note_date: date
    reason: str
    taxable_paise: int
    cgst_paise: int
    sgst_paise: int
    igst_paise: int
    total_paise: int
    total_in_words: str
    pdf_path: str | None


_PROFILE = """
SELECT workspace_id::text AS workspace_id, legal_name, address, country, state_code, gstin, email, updated_at
FROM public.billing_profiles WHERE workspace_id = %s
"""
_PUT_PROFILE = """
INSERT INTO public.billing_profiles AS p
    (workspace_id, legal_name, address, country, state_code, gstin, email, updated_at, updated_by)
VALUES (%(workspace_id)s, %(legal_name)s, %(address)s, %(country)s, %(state_code)s, %(gstin)s, %(email)s, now(),
        %(actor)s)
ON CONFLICT (workspace_id) DO UPDATE
SET legal_name = EXCLUDED.legal_name, address = EXCLUDED.address, country = EXCLUDED.country,
    state_code = EXCLUDED.state_code, gstin = EXCLUDED.gstin, email = EXCLUDED.email, updated_at = now(),
    updated_by = EXCLUDED.updated_by
RETURNING workspace_id::text AS workspace_id, legal_name, address, country, state_code, gstin, email, updated_at
"""
_WORKSPACE_NAME = "SELECT name FROM public.workspaces WHERE id = %s"
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 7310))"
_ENSURE_SERIES = """
INSERT INTO public.invoice_series (supplier_gstin, series, financial_year) VALUES (%s, %s, %s)
ON CONFLICT DO NOTHING
"""
_LOCK_SERIES = """
SELECT last_number FROM public.invoice_series WHERE supplier_gstin = %s AND series = %s AND financial_year = %s
FOR UPDATE
"""
_ADVANCE_SERIES = """
UPDATE public.invoice_series SET last_number = %s
WHERE supplier_gstin = %s AND series = %s AND financial_year = %s
"""
_INVOICE_COLUMNS = """
id, workspace_id, payment_ref, kind, campaign_id, supplier_gstin, financial_year, seq, number, issued_at,
invoice_date, supplier, recipient, place_of_supply, supply_type, description, sac, rate_percent, taxable_paise,
cgst_paise, sgst_paise, igst_paise, total_paise, total_in_words, pdf_path
"""
_INVOICE_BY_REF = f"SELECT {_INVOICE_COLUMNS} FROM public.invoices WHERE payment_ref = %s"
_INVOICE = f"SELECT {_INVOICE_COLUMNS} FROM public.invoices WHERE id = %s"
_INVOICE_LOCKED = f"SELECT {_INVOICE_COLUMNS} FROM public.invoices WHERE id = %s FOR SHARE"
_INSERT_INVOICE = f"""
INSERT INTO public.invoices (workspace_id, payment_ref, kind, campaign_id, supplier_gstin, financial_year, seq, number,
    issued_at, invoice_date, supplier, recipient, place_of_supply, supply_type, description, sac, rate_percent,
    taxable_paise, cgst_paise, sgst_paise, igst_paise, total_paise, total_in_words)
VALUES (%(workspace_id)s, %(payment_ref)s, %(kind)s, %(campaign_id)s, %(supplier_gstin)s, %(financial_year)s,
    %(seq)s, %(number)s, %(issued_at)s, %(invoice_date)s, %(supplier)s, %(recipient)s, %(place_of_supply)s,
    %(supply_type)s, %(description)s, %(sac)s, %(rate_percent)s, %(taxable_paise)s, %(cgst_paise)s, %(sgst_paise)s,
    %(igst_paise)s, %(total_paise)s, %(total_in_words)s)
RETURNING {_INVOICE_COLUMNS}
"""
_LIST_INVOICES = f"""
SELECT {_INVOICE_COLUMNS} FROM public.invoices
WHERE workspace_id = %(workspace_id)s
    AND (%(after_at)s::timestamptz IS NULL OR (issued_at, id) < (%(after_at)s::timestamptz, %(after_id)s::uuid))
ORDER BY issued_at DESC, id DESC LIMIT %(limit)s
"""
_INVOICE_PDF = "UPDATE public.invoices SET pdf_path = %s WHERE id = %s AND pdf_path IS DISTINCT FROM %s"
_NOTE_COLUMNS = """
id, invoice_id, workspace_id, refund_id, supplier_gstin, financial_year, seq, number, issued_at, note_date, reason,
taxable_paise, cgst_paise, sgst_paise, igst_paise, total_paise, total_in_words, pdf_path
"""
_NOTE_BY_REFUND = f"SELECT {_NOTE_COLUMNS} FROM public.credit_notes WHERE refund_id = %s"
_NOTE = f"SELECT {_NOTE_COLUMNS} FROM public.credit_notes WHERE id = %s"
_NOTES_OF = f"SELECT {_NOTE_COLUMNS} FROM public.credit_notes WHERE invoice_id = %s ORDER BY issued_at, seq"
_CREDITED = """
SELECT coalesce(sum(total_paise), 0)::bigint AS total, coalesce(sum(taxable_paise), 0)::bigint AS taxable,
    coalesce(sum(cgst_paise), 0)::bigint AS cgst, coalesce(sum(sgst_paise), 0)::bigint AS sgst,
    coalesce(sum(igst_paise), 0)::bigint AS igst
FROM public.credit_notes WHERE invoice_id = %s
"""
_INSERT_NOTE = f"""
INSERT INTO public.credit_notes (invoice_id, workspace_id, refund_id, supplier_gstin, financial_year, seq, number,
    issued_at, note_date, reason, taxable_paise, cgst_paise, sgst_paise, igst_paise, total_paise, total_in_words)
VALUES (%(invoice_id)s, %(workspace_id)s, %(refund_id)s, %(supplier_gstin)s, %(financial_year)s, %(seq)s,
    %(number)s, %(issued_at)s, %(note_date)s, %(reason)s, %(taxable_paise)s, %(cgst_paise)s, %(sgst_paise)s,
    %(igst_paise)s, %(total_paise)s, %(total_in_words)s)
RETURNING {_NOTE_COLUMNS}
"""
_NOTE_PDF = "UPDATE public.credit_notes SET pdf_path = %s WHERE id = %s AND pdf_path IS DISTINCT FROM %s"
_CAMPAIGN_TITLE = "SELECT brief->>'title' AS title FROM public.campaigns WHERE id = %s"


def profile(conn: Conn, workspace_id: str) -> ProfileRow | None:
    """The workspace's billing profile (a member's RLS connection or a service one); None if it has none."""
    return cast("ProfileRow | None", conn.execute(_PROFILE, (workspace_id,)).fetchone())


def put_profile(conn: Conn, *, workspace_id: str, legal_name: str, address: str, country: str,
                state_code: str | None, gstin: str | None, email: str, actor: str) -> ProfileRow:
    """Create or replace the workspace's billing profile (service connection)."""
    row = one(conn.execute(_PUT_PROFILE, {"workspace_id": workspace_id, "legal_name": legal_name, "address": address,
                                          "country": country, "state_code": state_code, "gstin": gstin,
                                          "email": email, "actor": actor}))
    return cast(ProfileRow, row)


def workspace_name(conn: Conn, workspace_id: str) -> str | None:
    """The workspace's display name; None if there is no such workspace."""
    row = conn.execute(_WORKSPACE_NAME, (workspace_id,)).fetchone()
    return None if row is None else str(row["name"])


def lock_document(conn: Conn, key: str) -> None:
    """Hold, until this transaction ends, the lock of the document keyed `key` (a payment or refund)."""
    conn.execute(_LOCK, (key,))


def next_number(conn: Conn, *, supplier_gstin: str, series: Series, financial_year: str) -> int:
    """The next number of the series, its counter row locked FOR UPDATE until this transaction ends."""
    conn.execute(_ENSURE_SERIES, (supplier_gstin, series, financial_year))
    last: int = one(conn.execute(_LOCK_SERIES, (supplier_gstin, series, financial_year)))["last_number"]
    conn.execute(_ADVANCE_SERIES, (last + 1, supplier_gstin, series, financial_year))
    return last + 1


def invoice_by_payment(conn: Conn, payment_ref: str) -> InvoiceRow | None:
    """The invoice issued for a payment, if any."""
    return cast("InvoiceRow | None", conn.execute(_INVOICE_BY_REF, (payment_ref,)).fetchone())


def invoice(conn: Conn, invoice_id: UUID | str, *, lock: bool = False) -> InvoiceRow | None:
    """One invoice (RLS-scoped on a member's connection); `lock` holds it FOR SHARE."""
    return cast("InvoiceRow | None", conn.execute(_INVOICE_LOCKED if lock else _INVOICE, (invoice_id,)).fetchone())


def insert_invoice(conn: Conn, values: dict[str, Any]) -> InvoiceRow:
    """Store a new invoice; `values` has every column `_INSERT_INVOICE` names."""
    row = one(conn.execute(_INSERT_INVOICE, {**values, "supplier": Jsonb(values["supplier"]),
                                             "recipient": Jsonb(values["recipient"])}))
    return cast(InvoiceRow, row)


def list_invoices(conn: Conn, workspace_id: str, *, limit: int,
                  after: tuple[datetime, UUID] | None) -> list[InvoiceRow]:
    """A page of the workspace's invoices, newest first, strictly after `after` (issued_at, id)."""
    rows = conn.execute(_LIST_INVOICES, {"workspace_id": workspace_id, "limit": limit,
                                         "after_at": after[0] if after else None,
                                         "after_id": after[1] if after else None}).fetchall()
    return cast("list[InvoiceRow]", rows)


def set_invoice_pdf(conn: Conn, invoice_id: UUID, path: str) -> None:
    """Record where the invoice's PDF is stored."""
    conn.execute(_INVOICE_PDF, (path, invoice_id, path))


def campaign_title(conn: Conn, campaign_id: UUID) -> str | None:
    """The title of a campaign's brief (None: no such campaign, or no title)."""
    row = conn.execute(_CAMPAIGN_TITLE, (campaign_id,)).fetchone()
    return None if row is None or row["title"] is None else str(row["title"])


def credit_note_by_refund(conn: Conn, refund_id: str) -> CreditNoteRow | None:
    """The credit note issued for a refund, if any."""
    return cast("CreditNoteRow | None", conn.execute(_NOTE_BY_REFUND, (refund_id,)).fetchone())


def credit_note(conn: Conn, note_id: UUID | str) -> CreditNoteRow | None:
    """One credit note (RLS-scoped on a member's connection)."""
    return cast("CreditNoteRow | None", conn.execute(_NOTE, (note_id,)).fetchone())


def credit_notes_of(conn: Conn, invoice_id: UUID) -> list[CreditNoteRow]:
    """The credit notes against an invoice, oldest first."""
    return cast("list[CreditNoteRow]", conn.execute(_NOTES_OF, (invoice_id,)).fetchall())


def credited(conn: Conn, invoice_id: UUID) -> dict[str, int]:
    """What the invoice's credit notes add up to: total, taxable, cgst, sgst, igst (paise)."""
    row = one(conn.execute(_CREDITED, (invoice_id,)))
    return {key: int(value) for key, value in row.items()}


def insert_credit_note(conn: Conn, values: dict[str, Any]) -> CreditNoteRow:
    """Store a new credit note; `values` has every column `_INSERT_NOTE` names."""
    return cast(CreditNoteRow, one(conn.execute(_INSERT_NOTE, values)))


def set_credit_note_pdf(conn: Conn, note_id: UUID, path: str) -> None:
    """Record where the credit note's PDF is stored."""
    conn.execute(_NOTE_PDF, (path, note_id, path))
