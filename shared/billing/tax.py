"""GST on one supply: the place of supply, which taxes apply, and their amounts in paise.

- Place of supply (s.12(2) IGST Act): a registered recipient's GSTIN state; an unregistered one's state on
  record, else the supplier's state. A recipient outside India is an export of services (s.13).
- Same state as the supplier → CGST + SGST (UTGST in a union territory without a legislature), each at
  half the rate; another state → IGST at the full rate; export → zero-rated: under a Letter of Undertaking
  without IGST, or without one with IGST paid (refund claimed later).
- Amounts are integer paise. Prices are tax-inclusive (what the customer paid is the invoice total):
  taxable = round_half_up(total × 100 / (100 + rate)); tax = total − taxable. For an intra-state supply
  CGST = round_half_up(taxable × rate/2 %) and SGST/UTGST = tax − CGST, so the parts always add up to the
  total and differ by at most one paisa. No whole-rupee round-off line: the total is what was paid.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from shared.billing.gstin import UNION_TERRITORIES_WITHOUT_LEGISLATURE

SupplyType = Literal["intra_state", "inter_state", "export_lut", "export_igst"]
"""`export_lut`: zero-rated under a Letter of Undertaking; `export_igst`: zero-rated with IGST paid."""
StateTax = Literal["SGST", "UTGST"]
EXPORT_LUT = "SUPPLY MEANT FOR EXPORT UNDER BOND OR LETTER OF UNDERTAKING WITHOUT PAYMENT OF INTEGRATED TAX"
EXPORT_IGST = "SUPPLY MEANT FOR EXPORT ON PAYMENT OF INTEGRATED TAX"
"""The endorsements an export invoice carries (Rule 46 proviso)."""


@dataclass(frozen=True)
class PlaceOfSupply:
    """Where a supply is taxed: an Indian state code, or None for a recipient abroad (then `country`)."""

    state_code: str | None
    country: str = "IN"

    @property
    def export(self) -> bool:
        """The recipient is outside India."""
        return self.country != "IN"


@dataclass(frozen=True)
class TaxBreakdown:
    """One supply's amounts in paise: `taxable + cgst + sgst + igst == total`."""

    supply_type: SupplyType
    rate_percent: Decimal
    taxable_paise: int
    cgst_paise: int
    sgst_paise: int
    igst_paise: int
    total_paise: int
    state_tax: StateTax = "SGST"
    """What the state half of an intra-state supply is called (UTGST in UTs without a legislature)."""

    @property
    def tax_paise(self) -> int:
        """All the tax."""
        return self.cgst_paise + self.sgst_paise + self.igst_paise


def place_of_supply(*, supplier_state: str, recipient_gstin: str | None, recipient_state: str | None,
                    country: str = "IN") -> PlaceOfSupply:
    """The place of supply of a service: abroad, the GSTIN's state, the state on record, or the supplier's."""
    if country != "IN":
        return PlaceOfSupply(state_code=None, country=country)
    if recipient_gstin:
        return PlaceOfSupply(state_code=recipient_gstin[:2])
    return PlaceOfSupply(state_code=recipient_state or supplier_state)


def round_half_up(value: Decimal) -> int:
    """`value` rounded to a whole number, halves away from zero (the paisa rule for tax amounts)."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def supply_type(place: PlaceOfSupply, *, supplier_state: str, lut: bool) -> SupplyType:
    """Which taxes a supply to `place` carries."""
    if place.export:
        return "export_lut" if lut else "export_igst"
    return "intra_state" if place.state_code == supplier_state else "inter_state"


def split_inclusive(total_paise: int, *, kind: SupplyType, rate_percent: Decimal,
                    state_code: str | None = None) -> TaxBreakdown:
    """The taxes contained in a tax-inclusive `total_paise` for a supply of `kind`."""
    if total_paise < 0:
        raise ValueError(f"An amount cannot be negative; got {total_paise} paise.")
    rate = Decimal(0) if kind == "export_lut" else rate_percent
    taxable = round_half_up(Decimal(total_paise) * 100 / (100 + rate))
    tax = total_paise - taxable
    state_tax: StateTax = "UTGST" if state_code in UNION_TERRITORIES_WITHOUT_LEGISLATURE else "SGST"
    if kind == "intra_state":
        cgst = round_half_up(Decimal(taxable) * rate / 2 / 100)
        cgst = min(cgst, tax)
        return TaxBreakdown(supply_type=kind, rate_percent=rate, taxable_paise=taxable, cgst_paise=cgst,
                            sgst_paise=tax - cgst, igst_paise=0, total_paise=total_paise, state_tax=state_tax)
    return TaxBreakdown(supply_type=kind, rate_percent=rate, taxable_paise=taxable, cgst_paise=0, sgst_paise=0,
                        igst_paise=tax, total_paise=total_paise)
