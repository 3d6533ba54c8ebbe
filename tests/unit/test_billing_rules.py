"""GST rules without a database: GSTIN checks, the place of supply and the tax split, rupees in words."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from shared.billing.gstin import InvalidGstin, check_character, normalize_gstin, state_code
from shared.billing.invoices import document_number, financial_year
from shared.billing.tax import place_of_supply, split_inclusive, supply_type
from shared.billing.words import amount_in_words, format_inr, number_in_words

RATE = Decimal(18)


class TestGstin:
    def test_the_notes_examples_are_valid_and_its_typo_is_not(self) -> None:
        """Test vectors from the reference note: two valid GSTINs, one with a wrong check character."""
        assert normalize_gstin("27AAPFU0939F1ZV") == "27AAPFU0939F1ZV"
        assert normalize_gstin(" 29aagcb7383j1z4 ") == "29AAGCB7383J1Z4"
        with pytest.raises(InvalidGstin) as caught:
            normalize_gstin("27AAPFU0939F1ZO")
        assert caught.value.rule == "checksum" and "'V'" in str(caught.value)

    def test_computed_check_characters_make_valid_gstins_for_every_state(self) -> None:
        """The check character computed for any state and PAN makes a GSTIN the validator accepts, and every
        other last character fails the checksum rule."""
        for code in ("01", "07", "27", "29", "33", "38", "97"):
            first14 = f"{code}ABCDE1234F1Z"
            valid = first14 + check_character(first14)
            assert normalize_gstin(valid) == valid
            wrong = next(c for c in "0123456789" if c != valid[14])
            with pytest.raises(InvalidGstin) as caught:
                normalize_gstin(first14 + wrong)
            assert caught.value.rule == "checksum"

    @pytest.mark.parametrize(("gstin", "rule"), [
        ("27AAPFU0939F1Z", "format"),          # 14 characters
        ("27AAPFU0939F1XV", "format"),         # 14th must be Z
        ("27AAPF00939F1ZV", "format"),         # PAN letters
        ("27AAPFU0939F0ZV", "format"),         # entity number 0
        ("40AAPFU0939F1ZV", "state_code"),
        ("00AAPFU0939F1ZV", "state_code"),
        ("29AAGCB7383J1Z5", "checksum"),
    ])
    def test_each_broken_rule_is_named(self, gstin: str, rule: str) -> None:
        with pytest.raises(InvalidGstin) as caught:
            normalize_gstin(gstin)
        assert caught.value.rule == rule

    def test_states_by_code_or_name(self) -> None:
        assert state_code("29") == state_code("Karnataka") == state_code(" karnataka ") == "29"
        assert state_code("7") == state_code("New Delhi") == "07"
        assert state_code("Tamil  Nadu") == "33"
        for bad in ("40", "25", "Atlantis", ""):
            with pytest.raises(ValueError):
                state_code(bad)


class TestTax:
    def test_same_state_splits_cgst_and_sgst_to_the_paisa(self) -> None:
        """₹1,18,000.50 inclusive: taxable 1,00,000.42 (11800050 / 1.18 = 10000042.37), CGST 9% of it is
        900003.81 → 900004, SGST the rest of the tax (1800008 − 900004)."""
        taxes = split_inclusive(11_800_050, kind="intra_state", rate_percent=RATE, state_code="29")
        assert (taxes.taxable_paise, taxes.cgst_paise, taxes.sgst_paise, taxes.igst_paise) == (
            10_000_042, 900_004, 900_004, 0)
        assert taxes.state_tax == "SGST"

    def test_odd_amounts_round_half_up_and_add_up(self) -> None:
        """₹999.99: 99999 / 1.18 = 84744.92 → 84745; tax 15254; CGST 9% × 84745 = 7627.05 → 7627, SGST 7627.
        ₹1.01: 101 / 1.18 = 85.59 → 86; tax 15; CGST 7.74 → 8, SGST 7 (one paisa apart)."""
        taxes = split_inclusive(99_999, kind="intra_state", rate_percent=RATE)
        assert (taxes.taxable_paise, taxes.cgst_paise, taxes.sgst_paise) == (84_745, 7_627, 7_627)
        small = split_inclusive(101, kind="intra_state", rate_percent=RATE)
        assert (small.taxable_paise, small.cgst_paise, small.sgst_paise) == (86, 8, 7)
        for total in range(100, 20_000, 7):
            split = split_inclusive(total, kind="intra_state", rate_percent=RATE)
            assert split.taxable_paise + split.cgst_paise + split.sgst_paise == total
            assert abs(split.cgst_paise - split.sgst_paise) <= 1
            assert abs(split.cgst_paise + split.sgst_paise - Decimal(split.taxable_paise) * RATE / 100) <= 1

    def test_other_state_is_igst_on_the_same_taxable_value(self) -> None:
        """₹1,000.01: 100001 / 1.18 = 84746.61 → 84747; IGST 15254."""
        taxes = split_inclusive(100_001, kind="inter_state", rate_percent=RATE)
        assert (taxes.taxable_paise, taxes.cgst_paise, taxes.sgst_paise, taxes.igst_paise) == (84_747, 0, 0, 15_254)

    def test_union_territory_without_legislature_is_utgst(self) -> None:
        assert split_inclusive(11_800, kind="intra_state", rate_percent=RATE, state_code="04").state_tax == "UTGST"
        assert split_inclusive(11_800, kind="intra_state", rate_percent=RATE, state_code="07").state_tax == "SGST"

    def test_export_under_lut_is_zero_rated(self) -> None:
        taxes = split_inclusive(100_001, kind="export_lut", rate_percent=RATE)
        assert (taxes.taxable_paise, taxes.tax_paise, taxes.rate_percent) == (100_001, 0, 0)
        paid = split_inclusive(100_001, kind="export_igst", rate_percent=RATE)
        assert (paid.taxable_paise, paid.igst_paise) == (84_747, 15_254)

    def test_place_of_supply(self) -> None:
        """A GSTIN's state wins over the address; an unregistered buyer's state on record, else the supplier's."""
        assert place_of_supply(supplier_state="29", recipient_gstin="27AAPFU0939F1ZV",
                               recipient_state="29").state_code == "27"
        assert place_of_supply(supplier_state="29", recipient_gstin=None, recipient_state="33").state_code == "33"
        assert place_of_supply(supplier_state="29", recipient_gstin=None, recipient_state=None).state_code == "29"
        abroad = place_of_supply(supplier_state="29", recipient_gstin=None, recipient_state=None, country="US")
        assert abroad.export and supply_type(abroad, supplier_state="29", lut=True) == "export_lut"
        assert supply_type(abroad, supplier_state="29", lut=False) == "export_igst"


class TestWords:
    def test_indian_numbering(self) -> None:
        assert amount_in_words(11_800_050) == "Rupees One Lakh Eighteen Thousand and Fifty Paise Only"
        assert amount_in_words(1_234_567_899) == ("Rupees One Crore Twenty-Three Lakh Forty-Five Thousand Six "
                                                  "Hundred Seventy-Eight and Ninety-Nine Paise Only")
        assert amount_in_words(100) == "Rupees One Only"
        assert amount_in_words(5) == "Five Paise Only"
        assert amount_in_words(0) == "Rupees Zero Only"
        assert number_in_words(1_000_000_000) == "One Hundred Crore"
        assert number_in_words(10_101) == "Ten Thousand One Hundred One"

    def test_rupee_format_groups_lakhs_and_crores(self) -> None:
        assert format_inr(11_800_050) == "₹1,18,000.50"
        assert format_inr(12_345_678_950) == "₹12,34,56,789.50"
        assert format_inr(99_900) == "₹999.00"
        assert format_inr(5) == "₹0.05"


class TestNumbers:
    def test_financial_year_turns_at_midnight_india_time(self) -> None:
        """31 March 23:59 IST is still 2026-27; 1 April 00:00 IST (18:30 UTC on 31 March) is 2027-28."""
        assert financial_year(datetime(2027, 3, 31, 18, 29, 59, tzinfo=UTC)) == "2026-27"
        assert financial_year(datetime(2027, 3, 31, 18, 30, tzinfo=UTC)) == "2027-28"
        assert financial_year(datetime(2027, 1, 15, tzinfo=UTC)) == "2026-27"
        assert financial_year(datetime(2099, 12, 1, tzinfo=UTC)) == "2099-00"

    def test_numbers_fit_sixteen_characters(self) -> None:
        assert document_number("INV", "2026-27", 1) == "INV/26-27/000001"
        assert len(document_number("INV", "2026-27", 999_999)) == 16
