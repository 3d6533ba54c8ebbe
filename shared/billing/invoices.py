"""Issuing GST tax invoices and credit notes, exactly once each, with gapless per-financial-year numbers.

Two entry points other features call, each with a service connection (issue inside your own transaction,
so the document commits or rolls back with the change it records) or a pool (its own transaction):

- `issue_invoice(db, workspace_id, *, payment_ref, amount_paise, description, kind)`: one invoice per
  `payment_ref` (a PhonePe merchant order id, a subscription redemption id). `amount_paise` is
  **tax-inclusive**: what the customer paid, which becomes the invoice total. A repeated call returns the
  invoice already issued; the same reference with another amount or workspace is a `Conflict`.
- `issue_credit_note(db, invoice_id, amount_paise, reason, refund_id)`: one credit note per `refund_id`
  against an invoice, for a tax-inclusive refunded amount, never more than is left uncredited.

Numbers are `<prefix>/<yy-yy>/<000001>` (at most 16 characters, Rule 46(b)), unique per supplier GSTIN,
from a series per financial year (1 April to 31 March, India time); credit notes have their own series.
The invoice's parties are copied into it as printed, so later profile edits never change an issued one.

`PaymentInvoicing` is the hook of campaign payments: `issue` runs inside the transaction that marks a
PhonePe order completed; `render` then stores the PDF, best effort (a failure is logged and the PDF is
rendered on its first download instead).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict, get_args
from uuid import UUID
from zoneinfo import ZoneInfo

from psycopg_pool import ConnectionPool

from shared.billing.gstin import InvalidGstin, normalize_gstin, state_name
from shared.billing.tax import SupplyType, place_of_supply, split_inclusive, supply_type
from shared.billing.words import amount_in_words
from shared.db import billing as bdb
from shared.db.billing import CreditNoteRow, InvoiceRow, Series
from shared.db.pool import Conn, Pool, as_service
from shared.errors import ConfigurationError, Conflict, InvalidRequest, NotFound, Unprocessable, UpstreamUnavailable
from shared.lazy import lazy_module
from shared.settings import Settings, get_settings

if TYPE_CHECKING:
    from shared.billing import pdf
    from shared.integrations import storage
else:
    pdf = lazy_module("shared.billing.pdf")
    storage = lazy_module("shared.integrations.storage")

log = logging.getLogger("muse.billing")

IST = ZoneInfo("Asia/Kolkata")
InvoiceKind = Literal["campaign", "subscription"]
"""What an invoice is for: a campaign's PhonePe payment, or a plan subscription's Autopay redemption."""
MAX_NUMBER_LENGTH = 16


class Party(TypedDict):
    """A supplier or recipient as printed on a document."""

    legal_name: str
    address: str | None
    gstin: str | None
    state_code: str | None
    state: str | None
    country: str
    email: str | None


class ObjectStore(Protocol):
    """Where PDFs are kept (`shared.integrations.storage.SupabaseObjectStore`)."""

    def put(self, path: str, data: bytes, *, content_type: str) -> None: ...

    def get(self, path: str) -> bytes: ...


def financial_year(moment: datetime) -> str:
    """The Indian financial year of `moment` (April to March, India time), e.g. `2026-27`."""
    day = moment.astimezone(IST).date()
    start = day.year if day.month >= 4 else day.year - 1
    return f"{start}-{(start + 1) % 100:02d}"


def document_number(prefix: str, year: str, seq: int) -> str:
    """`INV/26-27/000001`: the prefix, the financial year's two two-digit years, the serial number."""
    number = f"{prefix}/{year[2:4]}-{year[5:7]}/{seq:06d}"
    if len(number) > MAX_NUMBER_LENGTH:
        raise ConfigurationError(f"Document number {number} would be longer than {MAX_NUMBER_LENGTH} characters "
                                 "(Rule 46(b)); shorten MUSE_INVOICE_NUMBER_PREFIX / MUSE_CREDIT_NOTE_NUMBER_PREFIX.")
    return number


def supplier(settings: Settings) -> Party:
    """The supplier as configured; a GSTIN that fails its checks is a `ConfigurationError`."""
    try:
        gstin = normalize_gstin(settings.gst_supplier_gstin)
    except InvalidGstin as exc:
        raise ConfigurationError(f"MUSE_GST_SUPPLIER_GSTIN is invalid ({exc.rule}): {exc}") from exc
    return Party(legal_name=settings.gst_supplier_legal_name, address=settings.gst_supplier_address, gstin=gstin,
                 state_code=gstin[:2], state=state_name(gstin[:2]), country="IN", email=settings.gst_supplier_email)


def recipient(conn: Conn, workspace_id: str) -> Party:
    """The workspace as invoiced: its billing profile, else (B2C, no address) its name."""
    found = bdb.profile(conn, workspace_id)
    if found is None:
        name = bdb.workspace_name(conn, workspace_id)
        if name is None:
            raise NotFound(f"Workspace {workspace_id} does not exist.")
        return Party(legal_name=name, address=None, gstin=None, state_code=None, state=None, country="IN", email=None)
    code = found["state_code"]
    return Party(legal_name=found["legal_name"], address=found["address"], gstin=found["gstin"], state_code=code,
                 state=state_name(code) if code else None, country=found["country"], email=found["email"])


@contextmanager
def _transaction(db: Conn | Pool) -> Iterator[Conn]:
    if isinstance(db, ConnectionPool):
        with as_service(db) as conn:
            yield conn
    else:
        with db.transaction():
            yield db


def _number(conn: Conn, *, supplier_gstin: str, series: Series, prefix: str, at: datetime) -> tuple[str, int, str]:
    year = financial_year(at)
    seq = bdb.next_number(conn, supplier_gstin=supplier_gstin, series=series, financial_year=year)
    return year, seq, document_number(prefix, year, seq)


def issue_invoice(db: Conn | Pool, workspace_id: UUID | str, *, payment_ref: str, amount_paise: int,
                  description: str, kind: InvoiceKind, campaign_id: UUID | None = None,
                  settings: Settings | None = None, at: datetime | None = None) -> InvoiceRow:
    """The tax invoice for a completed payment of `amount_paise` (tax-inclusive: the invoice total), issued once.

    `db` is a service connection (the invoice joins its transaction) or a pool. Duplicate and concurrent
    calls for one `payment_ref` return the same invoice; the same reference with another workspace or
    amount is a `Conflict`. `at` (default now) dates the invoice and picks its financial year.
    """
    settings = settings or get_settings()
    if amount_paise <= 0:
        raise InvalidRequest(f"An invoice needs a positive amount; got {amount_paise} paise.",
                             details={"field": "amount_paise"})
    if not payment_ref or len(payment_ref) > 200:
        raise InvalidRequest("`payment_ref` must be 1-200 characters.", details={"field": "payment_ref"})
    if not description.strip():
        raise InvalidRequest("An invoice needs a description of the service.", details={"field": "description"})
    if kind not in get_args(InvoiceKind):
        raise InvalidRequest(f"`kind` must be one of {get_args(InvoiceKind)}; got {kind!r}.", details={"field": "kind"})
    workspace = str(workspace_id)
    party = supplier(settings)
    supplier_gstin = str(party["gstin"])
    moment = at or datetime.now(UTC)
    with _transaction(db) as conn:
        bdb.lock_document(conn, f"invoice:{payment_ref}")
        existing = bdb.invoice_by_payment(conn, payment_ref)
        if existing is not None:
            if str(existing["workspace_id"]) != workspace or existing["total_paise"] != amount_paise:
                raise Conflict(f"Payment {payment_ref} was invoiced as {existing['number']} to workspace "
                               f"{existing['workspace_id']} for {existing['total_paise']} paise; it cannot be "
                               f"invoiced again for {amount_paise} paise to workspace {workspace}.")
            return existing
        billed = recipient(conn, workspace)
        place = place_of_supply(supplier_state=supplier_gstin[:2], recipient_gstin=billed["gstin"],
                                recipient_state=billed["state_code"], country=billed["country"])
        kind_of_supply = supply_type(place, supplier_state=supplier_gstin[:2], lut=settings.gst_lut_arn is not None)
        taxes = split_inclusive(amount_paise, kind=kind_of_supply, rate_percent=settings.gst_rate_percent,
                                state_code=place.state_code)
        year, seq, number = _number(conn, supplier_gstin=supplier_gstin, series="invoice",
                                    prefix=settings.invoice_number_prefix, at=moment)
        stored_supplier: dict[str, Any] = {**party, "lut_arn": settings.gst_lut_arn,
                                           "lut_date": settings.gst_lut_date.isoformat()
                                           if settings.gst_lut_date else None,
                                           "state_tax": taxes.state_tax}
        return bdb.insert_invoice(conn, {
            "workspace_id": workspace, "payment_ref": payment_ref, "kind": kind, "campaign_id": campaign_id,
            "supplier_gstin": supplier_gstin, "financial_year": year, "seq": seq, "number": number,
            "issued_at": moment, "invoice_date": moment.astimezone(IST).date(), "supplier": stored_supplier,
            "recipient": dict(billed), "place_of_supply": place.state_code, "supply_type": kind_of_supply,
            "description": description.strip()[:500], "sac": settings.gst_sac, "rate_percent": taxes.rate_percent,
            "taxable_paise": taxes.taxable_paise, "cgst_paise": taxes.cgst_paise, "sgst_paise": taxes.sgst_paise,
            "igst_paise": taxes.igst_paise, "total_paise": taxes.total_paise,
            "total_in_words": amount_in_words(taxes.total_paise),
        })


def issue_credit_note(db: Conn | Pool, invoice_id: UUID | str, amount_paise: int, reason: str, refund_id: str, *,
                      settings: Settings | None = None, at: datetime | None = None) -> CreditNoteRow:
    """The credit note for refund `refund_id` of `amount_paise` (tax-inclusive) against an invoice, issued once.

    The note reverses tax in the invoice's own proportions; the note that credits what is left of the
    invoice takes exactly its remaining taxable value and taxes, so an invoice refunded in parts adds up
    to zero. A repeated call returns the note already issued; the same refund id with another invoice or
    amount is a `Conflict`; crediting more than is left uncredited is `Unprocessable`.
    """
    settings = settings or get_settings()
    if amount_paise <= 0:
        raise InvalidRequest(f"A credit note needs a positive amount; got {amount_paise} paise.",
                             details={"field": "amount_paise"})
    if not refund_id or len(refund_id) > 200:
        raise InvalidRequest("`refund_id` must be 1-200 characters.", details={"field": "refund_id"})
    if not reason.strip():
        raise InvalidRequest("A credit note needs a reason.", details={"field": "reason"})
    try:
        invoice_id = UUID(str(invoice_id))
    except ValueError as exc:
        raise NotFound(f"Invoice {str(invoice_id)[:60]!r} does not exist (invoice ids are UUIDs).") from exc
    moment = at or datetime.now(UTC)
    with _transaction(db) as conn:
        bdb.lock_document(conn, f"credit_note:{refund_id}")
        existing = bdb.credit_note_by_refund(conn, refund_id)
        if existing is not None:
            if existing["invoice_id"] != invoice_id or existing["total_paise"] != amount_paise:
                raise Conflict(f"Refund {refund_id} already has credit note {existing['number']} for "
                               f"{existing['total_paise']} paise against invoice {existing['invoice_id']}.")
            return existing
        bdb.lock_document(conn, f"credits-of:{invoice_id}")
        invoice = bdb.invoice(conn, invoice_id)
        if invoice is None:
            raise NotFound(f"Invoice {invoice_id} does not exist.")
        done = bdb.credited(conn, invoice["id"])
        left = invoice["total_paise"] - done["total"]
        if amount_paise > left:
            raise Unprocessable(f"Invoice {invoice['number']} has {left} paise left to credit; a credit note of "
                                f"{amount_paise} paise would exceed it.",
                                details={"invoice_id": str(invoice["id"]), "creditable_paise": left})
        if amount_paise == left:
            parts = {"taxable_paise": invoice["taxable_paise"] - done["taxable"],
                     "cgst_paise": invoice["cgst_paise"] - done["cgst"],
                     "sgst_paise": invoice["sgst_paise"] - done["sgst"],
                     "igst_paise": invoice["igst_paise"] - done["igst"]}
        else:
            kind: SupplyType = invoice["supply_type"]  # type: ignore[assignment]
            taxes = split_inclusive(amount_paise, kind=kind, rate_percent=invoice["rate_percent"],
                                    state_code=invoice["place_of_supply"])
            parts = {"taxable_paise": taxes.taxable_paise, "cgst_paise": taxes.cgst_paise,
                     "sgst_paise": taxes.sgst_paise, "igst_paise": taxes.igst_paise}
        year, seq, number = _number(conn, supplier_gstin=invoice["supplier_gstin"], series="credit_note",
                                    prefix=settings.credit_note_number_prefix, at=moment)
        return bdb.insert_credit_note(conn, {
            "invoice_id": invoice["id"], "workspace_id": invoice["workspace_id"], "refund_id": refund_id,
            "supplier_gstin": invoice["supplier_gstin"], "financial_year": year, "seq": seq, "number": number,
            "issued_at": moment, "note_date": moment.astimezone(IST).date(), "reason": reason.strip()[:500],
            **parts, "total_paise": amount_paise, "total_in_words": amount_in_words(amount_paise),
        })


def pdf_path(workspace_id: UUID | str, number: str) -> str:
    """Where a document's PDF is stored: `<workspace>/<number with / as _>.pdf`."""
    return f"{workspace_id}/{number.replace('/', '_')}.pdf"


@dataclass
class InvoicePdfs:
    """Invoice and credit-note PDFs in Storage: rendered once, stored at a path derived from the number.

    Rendering is deterministic, so a retried store writes the same bytes to the same path; the row
    records the path once the object exists. A document whose PDF is missing or unreadable (Storage down)
    is rendered when asked for, the same bytes as the stored one.
    """

    pool: Pool
    settings: Settings
    store_override: ObjectStore | None = None

    @cached_property
    def store(self) -> ObjectStore:
        """The invoices bucket (built on first use: PDFs are not needed to issue an invoice)."""
        if self.store_override is not None:
            return self.store_override
        return dataclasses.replace(storage.supabase_object_store(self.settings), bucket=self.settings.invoices_bucket)

    def invoice_pdf(self, invoice: InvoiceRow) -> bytes:
        """The invoice's PDF: the stored one, else rendered now and stored (serving it even if storing fails)."""
        if invoice["pdf_path"]:
            try:
                return self.store.get(invoice["pdf_path"])
            except (NotFound, UpstreamUnavailable) as exc:
                log.warning("invoice %s: its PDF %s could not be read (%s); rendering it again", invoice["number"],
                            invoice["pdf_path"], exc)
        data = pdf.render_invoice(invoice)
        path = pdf_path(invoice["workspace_id"], invoice["number"])
        if self._stored(path, data, invoice["number"]):
            with as_service(self.pool) as conn:
                bdb.set_invoice_pdf(conn, invoice["id"], path)
        return data

    def credit_note_pdf(self, note: CreditNoteRow) -> bytes:
        """The credit note's PDF: the stored one, else rendered now and stored (served even if storing fails)."""
        if note["pdf_path"]:
            try:
                return self.store.get(note["pdf_path"])
            except (NotFound, UpstreamUnavailable) as exc:
                log.warning("credit note %s: its PDF could not be read (%s); rendering it again", note["number"], exc)
        with as_service(self.pool) as conn:
            invoice = bdb.invoice(conn, note["invoice_id"])
        assert invoice is not None, "a credit note's invoice is never deleted"
        data = pdf.render_credit_note(note, invoice)
        path = pdf_path(note["workspace_id"], note["number"])
        if self._stored(path, data, note["number"]):
            with as_service(self.pool) as conn:
                bdb.set_credit_note_pdf(conn, note["id"], path)
        return data

    def _stored(self, path: str, data: bytes, number: str) -> bool:
        """Put the PDF at `path`; False (logged) when Storage is unreachable or not configured."""
        try:
            self.store.put(path, data, content_type="application/pdf")
        except (UpstreamUnavailable, ConfigurationError, NotFound) as exc:
            log.warning("the PDF of %s was not stored (%s); it is rendered again on the next download", number, exc)
            return False
        return True


class CompletedPayment(Protocol):
    """What the hook needs of a completed PhonePe payment (`shared.db.payments.Payment` is one)."""

    @property
    def merchant_order_id(self) -> str: ...

    @property
    def workspace_id(self) -> UUID: ...

    @property
    def campaign_id(self) -> UUID | None: ...

    @property
    def amount_paise(self) -> int: ...


@dataclass
class PaymentInvoicing:
    """The invoice of each completed campaign payment: issued in the confirming transaction, rendered after."""

    settings: Settings
    pdfs: InvoicePdfs | None = None

    def issue(self, conn: Conn, payment: CompletedPayment) -> InvoiceRow:
        """Issue (or find) the payment's invoice on the confirming transaction's connection."""
        title = bdb.campaign_title(conn, payment.campaign_id) if payment.campaign_id else None
        description = "Muse campaign: planning, content and execution" + (f" - {title}" if title else "")
        return issue_invoice(conn, payment.workspace_id, payment_ref=payment.merchant_order_id,
                             amount_paise=payment.amount_paise, description=description[:300], kind="campaign",
                             campaign_id=payment.campaign_id, settings=self.settings)

    def render(self, payment_ref: str) -> None:
        """Store the payment's invoice PDF now; never raises (a failure leaves it to the first download)."""
        if self.pdfs is None:
            return
        try:
            with as_service(self.pdfs.pool) as conn:
                invoice = bdb.invoice_by_payment(conn, payment_ref)
            if invoice is not None and not invoice["pdf_path"]:
                self.pdfs.invoice_pdf(invoice)
        except Exception:
            log.exception("rendering the invoice PDF of payment %s failed; it is rendered on first download",
                          payment_ref)
