"""Tax invoices and credit notes as PDF (fpdf2, text shaped with HarfBuzz through uharfbuzz).

Fonts ship with the code (`fonts/`: Noto Sans and Noto Sans Devanagari, OFL, subset) and are embedded in
every document, so ₹ and Devanagari (names, addresses, the Hindi heading) print the same everywhere.
Rendering is deterministic: the creation date is the document's issue time, so the same row always gives
the same bytes and a retried upload stores the same file.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from shared.billing.gstin import state_name
from shared.billing.tax import EXPORT_IGST, EXPORT_LUT
from shared.billing.words import format_inr
from shared.db.billing import CreditNoteRow, InvoiceRow

FONTS = Path(__file__).parent / "fonts"
_LINE = 5.5


class _Document(FPDF):
    def __init__(self, issued_at: datetime) -> None:
        super().__init__(format="A4")
        self.set_creation_date(issued_at)
        self.set_auto_page_break(auto=True, margin=15)
        self.add_font("NotoSans", "", FONTS / "NotoSans-Regular.ttf")
        self.add_font("NotoSans", "B", FONTS / "NotoSans-Bold.ttf")
        self.add_font("NotoSansDevanagari", "", FONTS / "NotoSansDevanagari-Regular.ttf")
        self.set_fallback_fonts(["NotoSansDevanagari"], exact_match=False)
        self.set_text_shaping(True)
        self.set_margins(15, 15, 15)
        self.add_page()

    def line_text(self, text: str, *, size: float = 9.5, bold: bool = False, align: str = "L") -> None:
        self.set_font("NotoSans", "B" if bold else "", size)
        self.multi_cell(0, _LINE, text, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def pair(self, label: str, value: str) -> None:
        self.set_font("NotoSans", "B", 9.5)
        self.cell(48, _LINE, label)
        self.set_font("NotoSans", "", 9.5)
        self.multi_cell(0, _LINE, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def service_row(self, description: str, sac: str, amount: str) -> None:
        """The line of the service: its description wraps inside its cell, the row as tall as it needs."""
        self.set_font("NotoSans", "", 9.5)
        lines = self.multi_cell(105, 7, description, align="L", dry_run=True, output="LINES")
        assert isinstance(lines, list), "output=LINES gives the lines"
        height = 7 * max(1, len(lines))
        x, y = self.get_x(), self.get_y()
        self.multi_cell(105, 7, description, border=1, align="L", new_x=XPos.RIGHT, new_y=YPos.TOP)
        self.set_xy(x + 105, y)
        self.cell(30, height, sac, border=1, align="C")
        self.cell(45, height, amount, border=1, align="R")
        self.ln(height)

    def row(self, cells: list[tuple[str, float, str]], *, bold: bool = False) -> None:
        self.set_font("NotoSans", "B" if bold else "", 9.5)
        for text, width, align in cells:
            self.cell(width, 7, text, border=1, align=align)
        self.ln(7)


def _party(pdf: _Document, title: str, party: dict[str, Any]) -> None:
    pdf.line_text(title, bold=True, size=10.5)
    pdf.line_text(str(party["legal_name"]))
    if party.get("address"):
        pdf.line_text(str(party["address"]))
    if party.get("state_code"):
        pdf.line_text(f"State: {party.get('state') or state_name(party['state_code'])} (code {party['state_code']})")
    if party.get("country") and party["country"] != "IN":
        pdf.line_text(f"Country: {party['country']}")
    pdf.line_text(f"GSTIN: {party['gstin']}" if party.get("gstin") else "GSTIN: unregistered")
    if party.get("email"):
        pdf.line_text(f"Email: {party['email']}")
    pdf.ln(2)


def _percent(rate: Decimal) -> str:
    return f"{rate.normalize():f}%"


def _place(row: InvoiceRow) -> str:
    if row["place_of_supply"] is None:
        return f"Outside India ({row['recipient'].get('country')}), export of services"
    return f"{state_name(row['place_of_supply'])} (code {row['place_of_supply']})"


def _tax_rows(pdf: _Document, *, supply: str, rate: Decimal, state_tax: str, cgst: int, sgst: int, igst: int) -> None:
    half = _percent(rate / 2)
    if supply == "intra_state":
        pdf.row([(f"CGST @ {half}", 135, "R"), (format_inr(cgst), 45, "R")])
        pdf.row([(f"{state_tax} @ {half}", 135, "R"), (format_inr(sgst), 45, "R")])
    elif supply == "export_lut":
        pdf.row([("IGST @ 0% (zero-rated under LUT)", 135, "R"), (format_inr(0), 45, "R")])
    else:
        pdf.row([(f"IGST @ {_percent(rate)}", 135, "R"), (format_inr(igst), 45, "R")])


def render_invoice(row: InvoiceRow) -> bytes:
    """The tax invoice as PDF: every Rule 46 particular that applies to a service (no goods, no quantity)."""
    supplier = row["supplier"]
    pdf = _Document(row["issued_at"])
    pdf.line_text("कर बीजक  /  TAX INVOICE", bold=True, size=15, align="C")
    if row["supply_type"] in ("export_lut", "export_igst"):
        pdf.line_text(EXPORT_LUT if row["supply_type"] == "export_lut" else EXPORT_IGST, bold=True, size=8.5,
                      align="C")
    pdf.ln(3)
    _party(pdf, "Supplier", supplier)
    _party(pdf, "Bill to", row["recipient"])
    pdf.pair("Invoice number", row["number"])
    pdf.pair("Invoice date", row["invoice_date"].strftime("%d %b %Y"))
    pdf.pair("Place of supply", _place(row))
    pdf.pair("Reverse charge", "No")
    if row["supply_type"] == "export_lut" and supplier.get("lut_arn"):
        pdf.pair("LUT ARN", f"{supplier['lut_arn']}" + (f" dated {supplier['lut_date']}"
                                                          if supplier.get("lut_date") else ""))
    pdf.pair("Payment reference", row["payment_ref"])
    pdf.ln(3)
    pdf.row([("Description of service", 105, "L"), ("SAC", 30, "C"), ("Taxable value", 45, "R")], bold=True)
    pdf.service_row(row["description"], row["sac"], format_inr(row["taxable_paise"]))
    _tax_rows(pdf, supply=row["supply_type"], rate=row["rate_percent"], state_tax=supplier.get("state_tax", "SGST"),
              cgst=row["cgst_paise"], sgst=row["sgst_paise"], igst=row["igst_paise"])
    pdf.row([("Invoice total (tax included)", 135, "R"), (format_inr(row["total_paise"]), 45, "R")], bold=True)
    pdf.ln(2)
    pdf.pair("Total in words", row["total_in_words"])
    pdf.ln(4)
    pdf.line_text("This is a computer-generated invoice issued electronically; no signature is required "
                  "(Rule 46(q) proviso).", size=8)
    return bytes(pdf.output())


def render_credit_note(note: CreditNoteRow, invoice: InvoiceRow) -> bytes:
    """The credit note against `invoice` as PDF (Section 34, Rule 53: its own number, the original invoice)."""
    supplier = invoice["supplier"]
    pdf = _Document(note["issued_at"])
    pdf.line_text("क्रेडिट नोट  /  CREDIT NOTE", bold=True, size=15, align="C")
    pdf.ln(3)
    _party(pdf, "Supplier", supplier)
    _party(pdf, "Recipient", invoice["recipient"])
    pdf.pair("Credit note number", note["number"])
    pdf.pair("Credit note date", note["note_date"].strftime("%d %b %Y"))
    pdf.pair("Against invoice", f"{invoice['number']} dated {invoice['invoice_date'].strftime('%d %b %Y')}")
    pdf.pair("Place of supply", _place(invoice))
    pdf.pair("Reason", note["reason"])
    pdf.ln(3)
    pdf.row([("Description of service", 105, "L"), ("SAC", 30, "C"), ("Taxable value", 45, "R")], bold=True)
    pdf.service_row(invoice["description"], invoice["sac"], format_inr(note["taxable_paise"]))
    _tax_rows(pdf, supply=invoice["supply_type"], rate=invoice["rate_percent"],
              state_tax=supplier.get("state_tax", "SGST"), cgst=note["cgst_paise"], sgst=note["sgst_paise"],
              igst=note["igst_paise"])
    pdf.row([("Credit total (tax included)", 135, "R"), (format_inr(note["total_paise"]), 45, "R")], bold=True)
    pdf.ln(2)
    pdf.pair("Total in words", note["total_in_words"])
    return bytes(pdf.output())
