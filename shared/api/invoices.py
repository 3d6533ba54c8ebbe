"""The workspace's GST tax invoices and credit notes.

- `GET /api/v1/invoices`: newest first, keyset-paged (`limit` 1-100, default 20; `cursor` = a page's
  `next_cursor`).
- `GET /api/v1/invoices/{invoice_id}`: one invoice as JSON (parties as printed, place of supply, each tax,
  total in words, its credit notes); with `Accept: application/pdf`, the PDF.
- `GET /api/v1/invoices/{invoice_id}/pdf`, `GET /api/v1/invoices/{invoice_id}/credit-notes/{credit_note_id}/pdf`:
  the PDFs. A document's PDF is rendered once and kept in Supabase Storage; one not stored yet (rendering
  after the payment failed, Storage was down) is rendered on its first download.

Members of the workspace read its documents; another workspace's are a 404. Amounts are integer paise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Literal
from uuid import UUID

import flask
from pydantic import BaseModel, Field

from shared.api.listing import Cursor
from shared.api.spec import WORKSPACE_HEADER, errors, json_content, uuid_path
from shared.auth import Principal, choose_workspace, verify_token
from shared.billing.gstin import state_name
from shared.billing.invoices import InvoicePdfs
from shared.billing.tax import EXPORT_IGST, EXPORT_LUT
from shared.billing.words import format_inr
from shared.db import billing as bdb
from shared.db.billing import CreditNoteRow, InvoiceRow
from shared.db.campaigns import memberships
from shared.db.pool import Pool, as_user, create_pool
from shared.errors import InvalidRequest, NotFound
from shared.http import Route, json_response
from shared.settings import Settings, get_settings

_PREFIX = r"^(?:/api)?/v1"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
PDF = "application/pdf"


class PartyView(BaseModel):
    """A supplier or recipient as printed on the invoice."""

    legal_name: str
    address: str | None
    gstin: str | None
    state_code: str | None
    state: str | None
    country: str
    email: str | None


class PlaceOfSupply(BaseModel):
    """The Indian state where the supply is taxed."""

    state_code: str
    state: str


class TaxLine(BaseModel):
    """One tax charged (or, on an export under LUT, not charged)."""

    tax: Literal["CGST", "SGST", "UTGST", "IGST"]
    rate_percent: str
    amount_paise: int
    amount: str = Field(description="The amount in rupees with Indian grouping, e.g. ₹9,000.04")


class CreditNoteView(BaseModel):
    """A credit note against the invoice (a refund), with its own number."""

    id: str
    number: str
    note_date: date
    reason: str
    refund_id: str
    taxable_paise: int
    taxes: list[TaxLine]
    total_paise: int
    total: str
    total_in_words: str
    pdf_url: str


class InvoiceSummary(BaseModel):
    """An invoice in a list."""

    id: str
    number: str
    invoice_date: date
    kind: Literal["campaign", "subscription"]
    payment_ref: str
    campaign_id: str | None
    supply_type: Literal["intra_state", "inter_state", "export_lut", "export_igst"]
    total_paise: int
    total: str
    pdf_url: str


class InvoiceView(InvoiceSummary):
    """A tax invoice (Rule 46): parties, number and date, place of supply, SAC, taxable value, taxes, total."""

    financial_year: str
    issued_at: datetime
    supplier: PartyView
    recipient: PartyView
    place_of_supply: PlaceOfSupply | None = Field(description="null: outside India (an export of services)")
    reverse_charge: bool
    export_endorsement: str | None
    lut_arn: str | None
    description: str
    sac: str
    rate_percent: str
    taxable_paise: int
    taxes: list[TaxLine]
    total_in_words: str
    credited_paise: int
    credit_notes: list[CreditNoteView]


class InvoicePage(BaseModel):
    """A page of invoices, newest first; pass `next_cursor` as `cursor` for the next (null: no more)."""

    items: list[InvoiceSummary]
    next_cursor: str | None


def _percent(value: Any) -> str:
    return f"{value.normalize():f}" if value == value.to_integral() else f"{value:f}".rstrip("0")


def _taxes(supply: str, rate: Any, state_tax: str, cgst: int, sgst: int, igst: int) -> list[TaxLine]:
    if supply == "intra_state":
        half = _percent(rate / 2)
        return [TaxLine(tax="CGST", rate_percent=half, amount_paise=cgst, amount=format_inr(cgst)),
                TaxLine(tax="UTGST" if state_tax == "UTGST" else "SGST", rate_percent=half, amount_paise=sgst,
                        amount=format_inr(sgst))]
    return [TaxLine(tax="IGST", rate_percent=_percent(rate), amount_paise=igst, amount=format_inr(igst))]


def _url(invoice_id: UUID) -> str:
    return f"/api/v1/invoices/{invoice_id}/pdf"


def summary(row: InvoiceRow) -> InvoiceSummary:
    """The list form of an invoice."""
    return InvoiceSummary(id=str(row["id"]), number=row["number"], invoice_date=row["invoice_date"],
                          kind=row["kind"], payment_ref=row["payment_ref"],
                          campaign_id=str(row["campaign_id"]) if row["campaign_id"] else None,
                          supply_type=row["supply_type"],
                          total_paise=row["total_paise"], total=format_inr(row["total_paise"]), pdf_url=_url(row["id"]))


def full(row: InvoiceRow, notes: list[CreditNoteRow]) -> InvoiceView:
    """The whole invoice with its credit notes."""
    supplier = row["supplier"]
    state_tax = str(supplier.get("state_tax", "SGST"))
    place = row["place_of_supply"]
    endorsement = {"export_lut": EXPORT_LUT, "export_igst": EXPORT_IGST}.get(row["supply_type"])
    return InvoiceView(
        **summary(row).model_dump(), financial_year=row["financial_year"], issued_at=row["issued_at"],
        supplier=PartyView.model_validate(supplier),
        recipient=PartyView.model_validate(row["recipient"]),
        place_of_supply=PlaceOfSupply(state_code=place, state=state_name(place)) if place else None,
        reverse_charge=False, export_endorsement=endorsement,
        lut_arn=supplier.get("lut_arn") if row["supply_type"] == "export_lut" else None,
        description=row["description"], sac=row["sac"], rate_percent=_percent(row["rate_percent"]),
        taxable_paise=row["taxable_paise"],
        taxes=_taxes(row["supply_type"], row["rate_percent"], state_tax, row["cgst_paise"], row["sgst_paise"],
                     row["igst_paise"]),
        total_in_words=row["total_in_words"], credited_paise=sum(n["total_paise"] for n in notes),
        credit_notes=[CreditNoteView(
            id=str(n["id"]), number=n["number"], note_date=n["note_date"], reason=n["reason"],
            refund_id=n["refund_id"], taxable_paise=n["taxable_paise"],
            taxes=_taxes(row["supply_type"], row["rate_percent"], state_tax, n["cgst_paise"], n["sgst_paise"],
                         n["igst_paise"]),
            total_paise=n["total_paise"], total=format_inr(n["total_paise"]), total_in_words=n["total_in_words"],
            pdf_url=f"/api/v1/invoices/{row['id']}/credit-notes/{n['id']}/pdf") for n in notes])


def _uuid(value: str, field: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError as exc:
        raise InvalidRequest(f"{value[:60]!r} is not {what} id; {what} ids are UUIDs.",
                             details={"field": field}) from exc


def _one(args: Any, name: str) -> str | None:
    values = args.getlist(name)
    if len(values) > 1:
        raise InvalidRequest(f"Send `{name}` at most once; got {len(values)}.", details={"field": name})
    return values[0] if values else None


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_LIMIT):
        raise InvalidRequest(f"`limit` must be a whole number from 1 to {MAX_LIMIT}; got {raw[:20]!r}.",
                             details={"field": "limit", "value": raw[:20]})
    return int(raw)


@dataclass
class InvoicesApi:
    """Invoices and credit notes of the caller's workspace, independent of HTTP."""

    pool: Pool
    settings: Settings
    pdfs: InvoicePdfs

    def page(self, principal: Principal, workspace: str | None, *, limit: int,
             cursor: Cursor | None) -> InvoicePage:
        """A page of the workspace's invoices, newest first."""
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = choose_workspace(memberships(conn), principal, workspace)
            rows = bdb.list_invoices(conn, workspace_id, limit=limit + 1,
                                     after=(cursor.created_at, cursor.id) if cursor else None)
        shown, more = rows[:limit], len(rows) > limit
        return InvoicePage(items=[summary(r) for r in shown],
                           next_cursor=Cursor(shown[-1]["issued_at"], shown[-1]["id"]).encode() if more else None)

    def _invoice(self, principal: Principal, invoice_id: UUID) -> tuple[InvoiceRow, list[CreditNoteRow]]:
        with as_user(self.pool, principal.claims) as conn:
            row = bdb.invoice(conn, invoice_id)
            if row is None:
                raise NotFound(f"Invoice {invoice_id} does not exist in your workspaces.")
            return row, bdb.credit_notes_of(conn, invoice_id)

    def invoice(self, principal: Principal, invoice_id: UUID) -> InvoiceView:
        """One invoice with its credit notes."""
        return full(*self._invoice(principal, invoice_id))

    def invoice_pdf(self, principal: Principal, invoice_id: UUID) -> tuple[str, bytes]:
        """(file name, PDF) of one invoice."""
        row, _ = self._invoice(principal, invoice_id)
        return row["number"].replace("/", "_") + ".pdf", self.pdfs.invoice_pdf(row)

    def credit_note_pdf(self, principal: Principal, invoice_id: UUID, note_id: UUID) -> tuple[str, bytes]:
        """(file name, PDF) of one credit note of the invoice."""
        with as_user(self.pool, principal.claims) as conn:
            note = bdb.credit_note(conn, note_id)
        if note is None or note["invoice_id"] != invoice_id:
            raise NotFound(f"Invoice {invoice_id} has no credit note {note_id} in your workspaces.")
        return note["number"].replace("/", "_") + ".pdf", self.pdfs.credit_note_pdf(note)


@lru_cache(maxsize=1)
def service() -> InvoicesApi:
    """This instance's invoices API: its own small pool and the invoices bucket."""
    settings = get_settings()
    pool = create_pool(settings.database_url, max_size=2)
    return InvoicesApi(pool=pool, settings=settings, pdfs=InvoicePdfs(pool, settings))


def _principal(request: flask.Request) -> Principal:
    return verify_token(request.headers.get("Authorization"), get_settings())


def _pdf(name: str, data: bytes) -> flask.Response:
    return flask.Response(data, mimetype=PDF, headers={"Content-Disposition": f'inline; filename="{name}"',
                                                      "Cache-Control": "private, max-age=300"})


def list_invoices(request: flask.Request) -> flask.Response:
    """`GET /api/v1/invoices`."""
    principal = _principal(request)
    limit = _limit(_one(request.args, "limit"))
    raw_cursor = _one(request.args, "cursor")
    made = service().page(principal, request.headers.get("X-Workspace-Id"), limit=limit,
                          cursor=Cursor.decode(raw_cursor) if raw_cursor is not None else None)
    return json_response(made.model_dump(mode="json"))


def get_invoice(request: flask.Request, invoice_id: str) -> flask.Response:
    """`GET /api/v1/invoices/{invoice_id}`: JSON, or the PDF when the client prefers `application/pdf`."""
    principal = _principal(request)
    wanted = _uuid(invoice_id, "invoice_id", "an invoice")
    if request.accept_mimetypes.best_match(["application/json", PDF], default="application/json") == PDF:
        return _pdf(*service().invoice_pdf(principal, wanted))
    return json_response(service().invoice(principal, wanted).model_dump(mode="json"))


def get_invoice_pdf(request: flask.Request, invoice_id: str) -> flask.Response:
    """`GET /api/v1/invoices/{invoice_id}/pdf`."""
    principal = _principal(request)
    return _pdf(*service().invoice_pdf(principal, _uuid(invoice_id, "invoice_id", "an invoice")))


def get_credit_note_pdf(request: flask.Request, invoice_id: str, credit_note_id: str) -> flask.Response:
    """`GET /api/v1/invoices/{invoice_id}/credit-notes/{credit_note_id}/pdf`."""
    principal = _principal(request)
    return _pdf(*service().credit_note_pdf(principal, _uuid(invoice_id, "invoice_id", "an invoice"),
                                           _uuid(credit_note_id, "credit_note_id", "a credit note")))


ROUTES: list[Route] = [
    ("GET", re.compile(_PREFIX + r"/invoices/?$"), list_invoices),
    ("GET", re.compile(_PREFIX + r"/invoices/(?P<invoice_id>[^/]+)/pdf/?$"), get_invoice_pdf),
    ("GET", re.compile(_PREFIX + r"/invoices/(?P<invoice_id>[^/]+)/credit-notes/(?P<credit_note_id>[^/]+)/pdf/?$"),
     get_credit_note_pdf),
    ("GET", re.compile(_PREFIX + r"/invoices/(?P<invoice_id>[^/]+)/?$"), get_invoice),
]

_PDF_CONTENT = {PDF: {"schema": {"type": "string", "format": "binary"}}}
PATHS: dict[str, Any] = {
    "/api/v1/invoices": {"get": {
        "summary": "The workspace's GST tax invoices, newest first, cursor-paged",
        "parameters": [
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
            {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string", "minLength": 1},
             "description": "A page's `next_cursor`, passed back unchanged"},
            WORKSPACE_HEADER],
        "responses": {"200": {"description": "A page of invoices", "content": json_content(InvoicePage)},
                      **errors(400, 401, 404)},
    }},
    "/api/v1/invoices/{invoice_id}": {"get": {
        "summary": "One tax invoice as JSON, or as PDF with `Accept: application/pdf`",
        "parameters": [uuid_path("invoice_id")],
        "responses": {"200": {"description": "The invoice",
                              "content": {**json_content(InvoiceView), **_PDF_CONTENT}},
                      **errors(400, 401, 404, 503)},
    }},
    "/api/v1/invoices/{invoice_id}/pdf": {"get": {
        "summary": "The tax invoice as PDF (fonts embedded; rendered once and kept in Storage)",
        "parameters": [uuid_path("invoice_id")],
        "responses": {"200": {"description": "The PDF", "content": _PDF_CONTENT}, **errors(400, 401, 404, 503)},
    }},
    "/api/v1/invoices/{invoice_id}/credit-notes/{credit_note_id}/pdf": {"get": {
        "summary": "A credit note against the invoice (a refund) as PDF",
        "parameters": [uuid_path("invoice_id"), uuid_path("credit_note_id")],
        "responses": {"200": {"description": "The PDF", "content": _PDF_CONTENT}, **errors(400, 401, 404, 503)},
    }},
}
MODELS: tuple[type, ...] = (InvoicePage, InvoiceSummary, InvoiceView, PartyView, PlaceOfSupply, TaxLine,
                            CreditNoteView)
