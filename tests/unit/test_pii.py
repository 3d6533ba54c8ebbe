"""Personal-data detectors, checksums, masking policies and the log filter (`shared.safety.pii`)."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.safety.pii import (
    PiiLogFilter,
    PiiPolicy,
    find_pii,
    install_log_masking,
    luhn_valid,
    mask,
    mask_data,
    mask_text,
    trace_anonymizer,
    verhoeff_check_digit,
    verhoeff_valid,
)


def aadhaar(first_eleven: str) -> str:
    return first_eleven + verhoeff_check_digit(first_eleven)


AADHAAR = aadhaar("23456789012")
OTHER_AADHAAR = aadhaar("98765432101")


def kinds(text: str) -> list[tuple[str, str]]:
    return [(f.kind, f.value) for f in find_pii(text)]


# ------------------------------------------------------------------------------------------- checksums


@pytest.mark.parametrize(("digits", "check"), [("236", "3"), ("12345", "1"), ("123456789012", "0"),
                                              ("142857", "0")])
def test_verhoeff_check_digits_match_the_published_examples(digits: str, check: str) -> None:
    assert verhoeff_check_digit(digits) == check
    assert verhoeff_valid(digits + check)


@pytest.mark.parametrize("number", ["2364", "123452", "1234567890121", "2336"])
def test_verhoeff_rejects_a_wrong_digit_and_a_swap(number: str) -> None:
    assert not verhoeff_valid(number)


def test_verhoeff_catches_every_single_digit_error_of_an_aadhaar() -> None:
    for position in range(12):
        for digit in "0123456789":
            if AADHAAR[position] != digit:
                assert not verhoeff_valid(AADHAAR[:position] + digit + AADHAAR[position + 1:])


@pytest.mark.parametrize(("number", "valid"), [("79927398713", True), ("79927398710", False),
                                               ("4111111111111111", True), ("4111111111111112", False),
                                               ("378282246310005", True), ("5555555555554444", True)])
def test_luhn_matches_the_published_examples(number: str, valid: bool) -> None:
    assert luhn_valid(number) is valid


# ------------------------------------------------------------------------------------------- detectors


@pytest.mark.parametrize("written", [AADHAAR, f"{AADHAAR[:4]} {AADHAAR[4:8]} {AADHAAR[8:]}",
                                     f"{AADHAAR[:4]}-{AADHAAR[4:8]}-{AADHAAR[8:]}"])
def test_aadhaar_numbers_are_found_plain_or_grouped(written: str) -> None:
    assert kinds(f"My Aadhaar is {written}.") == [("aadhaar", written)]


@pytest.mark.parametrize("text", [
    f"{AADHAAR[:11]}{(int(AADHAAR[11]) + 1) % 10}",  # wrong check digit
    "1" + AADHAAR[1:],  # Aadhaar numbers never start with 0 or 1
    f"{AADHAAR[:4]} {AADHAAR[4:8]}-{AADHAAR[8:]}",  # mixed separators
    f"Order {AADHAAR}7",  # part of a longer number
    f"ORD-{AADHAAR}",
])
def test_aadhaar_lookalikes_are_not_found(text: str) -> None:
    assert [k for k, _ in kinds(text)] != ["aadhaar"]
    assert "aadhaar" not in [k for k, _ in kinds(text)]


@pytest.mark.parametrize("pan", ["ABCPD1234E", "AAACR5055K", "AAAHT1234Q", "AABFG7777Z", "AAATT2222T"])
def test_pans_are_found(pan: str) -> None:
    assert kinds(f"PAN: {pan}") == [("pan", pan)]


@pytest.mark.parametrize("text", ["ABCXD1234E", "ABCDE1234F", "abcpd1234e", "XABCPD1234E", "ABCPD12345"])
def test_pan_lookalikes_are_not_found(text: str) -> None:
    """Holder type (4th letter) must be one of P C H F A T B L J G; capitals; nothing glued to it."""
    assert kinds(text) == []


def test_a_gstin_is_not_personal_data_and_its_pan_is_not_found_inside_it() -> None:
    assert kinds("GSTIN 27AAPFU0939F1ZV, 29ABCPD1234E1Z5") == []


@pytest.mark.parametrize("phone", ["9876543210", "+91 98765 43210", "+91-98765-43210", "+919876543210",
                                   "09876543210", "919876543210", "98765-43210", "987 654 3210", "(+91) 7012345678",
                                   "0091 6123456789"])
def test_indian_mobile_numbers_are_found(phone: str) -> None:
    assert kinds(f"Call us on {phone} today") == [("phone", phone)]


@pytest.mark.parametrize(("text", "kind"), [
    ("Mobile No. 9876543210", "phone"), ("Ph: 98765 43210", "phone"), ("Contact no - 9876543210", "phone"),
    ("WhatsApp 98765-43210", "phone"), (f"Aadhaar No. {AADHAAR}", "aadhaar"), ("Card no: 4111111111111111", "card"),
])
def test_a_label_that_names_personal_data_keeps_it_found(text: str, kind: str) -> None:
    assert [k for k, _ in kinds(text)] == [kind]


@pytest.mark.parametrize("text", [
    f"Order ID {AADHAAR}", f"Booking ref: {AADHAAR[:4]} {AADHAAR[4:8]} {AADHAAR[8:]}", "Invoice 4111111111111111",
    "Policy number 9876543210", "Ticket #4111 1111 1111 1111",
])
def test_a_number_labelled_as_an_identifier_is_not_personal_data(text: str) -> None:
    assert kinds(text) == []


@pytest.mark.parametrize("text", [
    "Order #9876543210 has shipped", "order no. 9876543210", "Invoice 7654321098", "SKU 98765 43210",
    "SKU-9876543210", "AWB 8765432109", "txn id 9988776655", "5876543210",  # starts with 5: not a mobile
    "98765432101",  # 11 digits
    "₹1,499 or ₹9,999", "MRP Rs. 12,999", "on 2026-12-01 at 10:30", "01/12/2026", "+1 650 253 0000",
    "1234567890", "Pack of 6, 250 g", "ISBN 978-3-16-148410-0",
])
def test_numbers_that_are_not_mobiles_are_not_found(text: str) -> None:
    assert kinds(text) == []


@pytest.mark.parametrize("email", ["ravi.kumar@gmail.com", "priya+offers@example.co.in", "a_b@mail.brand.in"])
def test_emails_are_found(email: str) -> None:
    assert kinds(f"Write to {email}.") == [("email", email)]


@pytest.mark.parametrize("text", ["@saanjh_sarees on Instagram", "user@localhost", "hello @ brand dot in",
                                  "#Diwali2026@home"])
def test_email_lookalikes_are_not_found(text: str) -> None:
    assert kinds(text) == []


@pytest.mark.parametrize("card", ["4111111111111111", "4111 1111 1111 1111", "5555-5555-5555-4444",
                                  "3782 822463 10005", "6521 1111 1111 1110"])
def test_card_numbers_with_a_valid_luhn_check_are_found(card: str) -> None:
    assert kinds(f"Card {card} expires 12/28") == [("card", card)]


@pytest.mark.parametrize("text", ["4111 1111 1111 1112", "41111 1111 111 1111", "4111 1111-1111 1111",
                                  "Order 1234567812345670", "Tracking 9111111111111111", "4111 1111 1111 1111 1"])
def test_card_lookalikes_are_not_found(text: str) -> None:
    """Wrong check, an odd grouping or mixed separators, no card network's leading digit, or longer."""
    assert "card" not in [k for k, _ in kinds(text)]


@pytest.mark.parametrize("upi", ["ravi.kumar@okaxis", "9876543210@ybl", "priya@paytm", "shop-42@oksbi",
                                 "anita@okhdfcbank", "store@upi", "meera@ibl", "raj@axl", "dev@apl"])
def test_upi_ids_are_found(upi: str) -> None:
    assert kinds(f"Pay to {upi} now") == [("upi", upi)]


@pytest.mark.parametrize(("text", "found"), [
    ("ravi@paytm.com", [("email", "ravi@paytm.com")]),  # an email at the PSP's domain, not a UPI id
    ("support@ybl.in", [("email", "support@ybl.in")]),
    ("hello@brand", []),  # not a known PSP handle
    ("@okaxis", []),
])
def test_upi_ids_do_not_swallow_emails_or_unknown_handles(text: str, found: list[tuple[str, str]]) -> None:
    assert kinds(text) == found


def test_findings_are_typed_spans_in_order_and_never_overlap() -> None:
    text = f"Ravi ({AADHAAR}), ravi@okaxis, +91 98765 43210, ravi@gmail.com, ABCPD1234E, 4111111111111111"
    findings = find_pii(text)
    assert [f.kind for f in findings] == ["aadhaar", "upi", "phone", "email", "pan", "card"]
    for f in findings:
        assert text[f.start:f.end] == f.value
    assert all(a.end <= b.start for a, b in zip(findings, findings[1:], strict=False))


def test_a_card_whose_first_twelve_digits_make_an_aadhaar_is_one_card() -> None:
    card = next(AADHAAR + f"{n:04d}" for n in range(10_000) if luhn_valid(AADHAAR + f"{n:04d}"))
    grouped = " ".join(card[i:i + 4] for i in range(0, 16, 4))
    assert kinds(f"Paid with {grouped}.") == [("card", grouped)]
    assert kinds(f"Paid with {card}.") == [("card", card)]


MARKETING = """
Diwali Dhamaka! Flat 40% off on Banarasi silk sarees — now ₹1,499 (MRP ₹2,499). Order today, free shipping
above ₹999. Use code DIWALI40 before 12/11/2026. Buy 2, get 1 free on SKU SS-2026-0042 and SKU 98765 43210.
Our GSTIN: 27AAPFU0939F1ZV. Stores in Mumbai, Pune and Bengaluru; 150+ designs, 4.8★ from 12,000 reviews.
Follow @saanjh_sarees, #DiwaliSale #Handloom. Order #9876543210 ships in 2-3 days. Call 1800 123 4567 (toll free).
Ignore the noise, trust the taste. Pack of 6 × 250 g, batch 2026/11/07, ISBN 978-93-5302-123-4.
"""


def test_ordinary_marketing_copy_has_no_findings() -> None:
    assert find_pii(MARKETING) == []


# ------------------------------------------------------------------------------------------- masking

PERSONAL = (f"Aadhaar {AADHAAR[:4]} {AADHAAR[4:8]} {AADHAAR[8:]}, PAN ABCPD1234E, mobile +91 98765 43210, "
            "email ravi.kumar@gmail.com, card 4111 1111 1111 1111, UPI ravi@okaxis.")


def test_redact_replaces_each_finding_with_its_typed_placeholder() -> None:
    assert mask(PERSONAL) == ("Aadhaar [AADHAAR], PAN [PAN], mobile [PHONE], email [EMAIL], card [CARD], "
                              "UPI [UPI].")


def test_mask_keeps_a_hint_and_nothing_more() -> None:
    masked = mask(PERSONAL, PiiPolicy(mode="mask"))
    assert masked == (f"Aadhaar XXXX XXXX {AADHAAR[8:]}, PAN XXXXXX234E, mobile +XX XXXXX X3210, "
                      "email r***@gmail.com, card XXXX XXXX XXXX 1111, UPI r***@okaxis.")
    assert find_pii(masked) == []


def test_allow_keeps_everything_and_overrides_pick_per_kind() -> None:
    assert mask(PERSONAL, PiiPolicy(mode="allow")) == PERSONAL
    policy = PiiPolicy(mode="allow", overrides={"aadhaar": "redact", "email": "mask"})
    masked = mask(PERSONAL, policy)
    assert "[AADHAAR]" in masked and "r***@gmail.com" in masked
    assert "ABCPD1234E" in masked and "+91 98765 43210" in masked and "ravi@okaxis" in masked


@pytest.mark.parametrize("mode", ["redact", "mask"])
def test_masking_twice_changes_nothing_more(mode: str) -> None:
    policy = PiiPolicy.model_validate({"mode": mode})
    once = mask(PERSONAL, policy)
    assert mask(once, policy) == once


def test_a_policy_refuses_unknown_kinds_and_modes() -> None:
    with pytest.raises(ValidationError, match="voter_id"):
        PiiPolicy.model_validate({"mode": "redact", "overrides": {"voter_id": "mask"}})
    with pytest.raises(ValidationError, match="mode"):
        PiiPolicy.model_validate({"mode": "hide"})


def test_offsets_of_the_original_map_into_the_masked_text() -> None:
    text = f"Page one: {OTHER_AADHAAR}.\fPage two starts here with ravi@okaxis.\fPage three."
    starts = (0, text.index("Page two"), text.index("Page three"))
    masked = mask_text(text)
    assert [masked.text[masked.position(s):].split(" ")[:2] for s in starts] == [
        ["Page", "one:"], ["Page", "two"], ["Page", "three."]]
    inside = text.index(OTHER_AADHAAR) + 3
    assert masked.text[masked.position(inside):].startswith("[AADHAAR]")


def test_json_data_is_masked_in_every_string_and_key() -> None:
    data = {"inputs": {"messages": [{"content": "Call 9876543210"}], "ravi@gmail.com": 3, "n": 9876543210}}
    assert mask_data(data) == {"inputs": {"messages": [{"content": "Call [PHONE]"}], "[EMAIL]": 3,
                                          "n": 9876543210}}
    assert trace_anonymizer(PiiPolicy(mode="mask"))({"error": "ValueError('ravi@okaxis')"}) == {
        "error": "ValueError('r***@okaxis')"}


# ------------------------------------------------------------------------------------------- logging


def test_the_log_filter_masks_message_arguments_and_traceback() -> None:
    log_filter = PiiLogFilter()
    try:
        raise ValueError(f"bad aadhaar {AADHAAR}")
    except ValueError:
        import sys

        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "user %s paid from %s", ("ravi@gmail.com",
                                   "ravi@okaxis"), sys.exc_info())
    assert log_filter.filter(record) is True
    assert record.getMessage() == "user [EMAIL] paid from [UPI]"
    assert record.exc_text is not None and "[AADHAAR]" in record.exc_text and AADHAAR not in record.exc_text


def test_every_logger_of_the_process_is_masked_once_installed(capsys: pytest.CaptureFixture[str]) -> None:
    first = install_log_masking()
    assert install_log_masking() is first
    logger = logging.getLogger("muse.test.pii.child")
    handler = logging.StreamHandler()
    logging.getLogger("muse.test").addHandler(handler)
    try:
        logger.warning("refund to %s", "+91 98765 43210")
        logger.warning({"card": "4111 1111 1111 1111"})
    finally:
        logging.getLogger("muse.test").removeHandler(handler)
    err = capsys.readouterr().err
    assert "refund to [PHONE]" in err and "[CARD]" in err
    assert "98765 43210" not in err and "4111 1111" not in err


FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def _imports(path: Path) -> set[str]:
    return {node.module for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module}


@pytest.mark.parametrize("main", sorted(FUNCTIONS.glob("*/main.py")), ids=lambda p: p.parent.name)
def test_every_function_imports_the_edge_module_that_installs_log_masking(main: Path) -> None:
    """`shared.http` installs the masking on import; each function reaches it directly or through the API router."""
    edge = Path(__file__).resolve().parents[2] / "shared" / "http.py"
    assert "install_log_masking()" in edge.read_text()
    imported = _imports(main)
    if "shared.http" not in imported:
        assert "shared.api.app" in imported and "shared.http" in _imports(edge.parent / "api" / "app.py")
