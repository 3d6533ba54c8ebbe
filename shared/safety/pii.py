"""Personal data (India's DPDP Act): find it in text and mask it by policy before it is stored or leaves the process.

Detectors, each built to stay quiet on marketing copy (prices, order numbers, dates, SKUs, GSTINs):

- `aadhaar`: 12 digits, first 2–9, plain or grouped 4-4-4 by spaces or hyphens, valid Verhoeff check digit;
- `pan`: `AAAAA9999A` in capitals whose 4th letter is a holder type (P, C, H, F, A, T, B, L, J, G);
- `phone`: Indian mobiles, 10 digits starting 6–9, with `+91`/`0091`/`91`/`0` prefixes and the usual groupings
  (98765 43210, 987-654-3210). Without a prefix, the digits count only when no identifier's label (order,
  invoice, SKU, ref, txn, AWB, PNR, account, id, `#`, optionally with `no.`) stands right before them, since
  that is how catalogues and receipts print their numbers; the same holds for Aadhaar and card numbers;
- `email`: addresses with a dotted domain;
- `card`: 13–19 digits, plain or in a card grouping (4-4-4-4, 4-6-5, 4-6-4...), a card network's leading digit
  and a valid Luhn check;
- `upi`: `handle@psp` for a known payment-service handle (`okaxis`, `ybl`, `paytm`...). `name@paytm.com` is an
  email, not a UPI id: a UPI id never continues into a dotted domain.

GSTINs are left alone on purpose: a GSTIN (`27AAPFU0939F1ZV`) is a business's public tax registration that
invoices must print, and the PAN inside it is not standalone (a PAN must not touch other letters or digits).

Policies (`PiiPolicy`) say per kind what happens to a finding: `redact` replaces it with a typed placeholder
(`[AADHAAR]`), `mask` keeps a hint (the last four digits, an email's first letter and domain), `allow` keeps it.
Masking is idempotent: neither placeholders nor hints are detected again.
"""

from __future__ import annotations

import logging
import re
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

PiiKind = Literal["aadhaar", "pan", "phone", "email", "card", "upi"]
"""Every kind of personal data the detectors find."""
PiiMode = Literal["redact", "mask", "allow"]
"""What a policy does with a finding: replace it by `[KIND]`, keep a hint of it, or keep it as is."""
KINDS: tuple[PiiKind, ...] = get_args(PiiKind)
MODES: tuple[PiiMode, ...] = get_args(PiiMode)
DEFAULT_MODE: PiiMode = "redact"

# --------------------------------------------------------------------------------------------- checksums

_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 3, 4, 0, 6, 7, 8, 9, 5), (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7), (4, 0, 1, 2, 3, 9, 5, 6, 7, 8), (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2), (7, 6, 5, 9, 8, 2, 1, 0, 4, 3), (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 5, 7, 6, 2, 8, 3, 0, 9, 4), (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7), (9, 4, 5, 3, 1, 2, 6, 8, 7, 0), (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5), (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_VERHOEFF_INV = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)


def _verhoeff(digits: str, offset: int) -> int:
    check = 0
    for i, digit in enumerate(reversed(digits)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[(i + offset) % 8][int(digit)]]
    return check


def verhoeff_valid(digits: str) -> bool:
    """Whether `digits` ends in its Verhoeff check digit (the scheme of Aadhaar numbers)."""
    return digits.isdigit() and _verhoeff(digits, 0) == 0


def verhoeff_check_digit(digits: str) -> str:
    """The Verhoeff check digit to append to `digits`."""
    if not digits.isdigit():
        raise ValueError(f"Verhoeff works on decimal digits, got {digits!r}")
    return str(_VERHOEFF_INV[_verhoeff(digits, 1)])


def luhn_valid(digits: str) -> bool:
    """Whether `digits` passes the Luhn (mod 10) check of payment card numbers."""
    if not digits.isdigit():
        return False
    total = 0
    for i, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


# --------------------------------------------------------------------------------------------- detectors


@dataclass(frozen=True)
class Finding:
    """Personal data of `kind` at `text[start:end]`."""

    kind: PiiKind
    start: int
    end: int
    value: str


_NOT_AFTER_NUMBER = r"(?<![\w.,/+@-])(?<!\d[ -])"
"""No letter, digit or number punctuation right before, and no digit group one separator before."""
_NOT_BEFORE_NUMBER = r"(?![\w@])(?![ -]\d)(?![.,]\d)"

_AADHAAR = re.compile(_NOT_AFTER_NUMBER + r"[2-9]\d{3}([ -]?)\d{4}\1\d{4}" + _NOT_BEFORE_NUMBER)
_PAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{3}[PCHFATBLJG][A-Z]\d{4}[A-Z](?![A-Za-z0-9])")
_PHONE = re.compile(
    r"(?<![\w.,/+@-])(?<!\d[ -])"
    r"(?P<prefix>(?:\+91|\(\+91\)|0091|91)[ -]?|0)?"
    r"(?P<number>[6-9]\d{9}|[6-9]\d{4}[ -]\d{5}|[6-9]\d{2}[ -]\d{3}[ -]\d{4}|[6-9]\d{3}[ -]\d{3}[ -]\d{3})"
    + _NOT_BEFORE_NUMBER
)
_IDENTIFIER_BEFORE = re.compile(
    r"(?:\b(?:order|invoice|inv|sku|item|ref|reference|txn|transaction|tracking|awb|booking|pnr|account|acct|"
    r"a/c|serial|model|batch|lot|utr|receipt|policy|ticket|case)(?:\W{1,3}(?:no|number|num|id|code))?|\bid|#)"
    r"\W{0,4}$",
    re.IGNORECASE,
)
"""An identifier's label right before a number (`Order no. `, `SKU `, `#`): the number is that identifier."""
_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w@-])"
)
_CARD = re.compile(_NOT_AFTER_NUMBER + r"[2-68]\d{2}(?:[ -]?\d){10,16}" + _NOT_BEFORE_NUMBER)
_CARD_GROUPS = {(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4), (4, 4, 4, 1), (4, 4, 4, 2), (4, 4, 4, 3),
                (4, 4, 4, 4, 1), (4, 4, 4, 4, 2), (6, 13), (5, 5, 5, 4)}
"""How cards are printed: Visa/Mastercard/RuPay 4-4-4-4, Amex 4-6-5, Diners 4-6-4, longer Maestro/UnionPay."""

UPI_HANDLES = frozenset({
    "okaxis", "oksbi", "okhdfcbank", "okicici", "okbizaxis", "ybl", "ibl", "axl", "paytm", "ptyes", "ptaxis",
    "pthdfc", "ptsbi", "upi", "apl", "yapl", "rapl", "axisbank", "axisb", "hdfcbank", "hdfcbankjd", "icici",
    "sbi", "kotak", "kmbl", "indus", "idfcbank", "idfcfirst", "yesbank", "yesbankltd", "federal", "fbl", "aubank",
    "rbl", "jupiteraxis", "fam", "slice", "freecharge", "mobikwik", "ikwik", "airtel", "jio", "amazonpay", "apay",
    "barodampay", "pnb", "unionbank", "uboi", "cnrb", "boi", "centralbank", "cbin", "dbs", "hsbc", "sc", "citi",
    "citigold", "waaxis", "wahdfcbank", "wasbi", "waicici", "abfspay", "pingpay", "naviaxis", "superyes",
    "tapicici", "timecosmos", "dlb", "equitas", "ujjivan", "kvb", "tmb", "csbpay", "iob", "indianbank",
})
"""Payment-service-provider handles of UPI ids (NPCI's list, the common ones)."""
_UPI = re.compile(
    r"(?<![\w.@-])(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{1,255})@(?P<handle>[A-Za-z]{2,32})(?![\w@-])(?!\.[A-Za-z0-9])"
)

_PRIORITY: dict[PiiKind, int] = {"card": 0, "aadhaar": 1, "upi": 2, "email": 3, "pan": 4, "phone": 5}
"""Which finding wins when two cover the same characters (after the longer one): checksummed kinds first."""


def _labelled_identifier(text: str, start: int) -> bool:
    return _IDENTIFIER_BEFORE.search(text, max(0, start - 40), start) is not None


def _aadhaar(text: str) -> Iterator[Finding]:
    for m in _AADHAAR.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if verhoeff_valid(digits) and not _labelled_identifier(text, m.start()):
            yield Finding("aadhaar", m.start(), m.end(), m.group())


def _pan(text: str) -> Iterator[Finding]:
    for m in _PAN.finditer(text):
        yield Finding("pan", m.start(), m.end(), m.group())


def _phone(text: str) -> Iterator[Finding]:
    for m in _PHONE.finditer(text):
        if m.group("prefix") is None and _labelled_identifier(text, m.start()):
            continue
        yield Finding("phone", m.start(), m.end(), m.group())


def _email(text: str) -> Iterator[Finding]:
    for m in _EMAIL.finditer(text):
        yield Finding("email", m.start(), m.end(), m.group())


def _card(text: str) -> Iterator[Finding]:
    for m in _CARD.finditer(text):
        value = m.group()
        groups = tuple(len(g) for g in re.split(r"[ -]", value))
        digits = value.replace(" ", "").replace("-", "")
        if len(groups) > 1 and (groups not in _CARD_GROUPS or len(set(re.findall(r"[ -]", value))) > 1):
            continue
        if 13 <= len(digits) <= 19 and luhn_valid(digits) and not _labelled_identifier(text, m.start()):
            yield Finding("card", m.start(), m.end(), value)


def _upi(text: str) -> Iterator[Finding]:
    for m in _UPI.finditer(text):
        if m.group("handle").lower() in UPI_HANDLES:
            yield Finding("upi", m.start(), m.end(), m.group())


_DETECTORS: tuple[Callable[[str], Iterator[Finding]], ...] = (_card, _aadhaar, _upi, _email, _pan, _phone)


def find_pii(text: str, kinds: tuple[PiiKind, ...] = KINDS) -> list[Finding]:
    """Personal data in `text`, in order and never overlapping (the longer, then the checksummed finding wins)."""
    found = [f for detect in _DETECTORS for f in detect(text) if f.kind in kinds]
    found.sort(key=lambda f: (-(f.end - f.start), _PRIORITY[f.kind], f.start))
    starts: list[int] = []
    kept: list[Finding] = []
    for finding in found:
        i = bisect_right(starts, finding.start)
        if (i and kept[i - 1].end > finding.start) or (i < len(kept) and kept[i].start < finding.end):
            continue
        starts.insert(i, finding.start)
        kept.insert(i, finding)
    return kept


# --------------------------------------------------------------------------------------------- policies


class PiiPolicy(BaseModel):
    """What to do with each kind of personal data: `mode` for every kind, unless `overrides` names the kind."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: PiiMode = DEFAULT_MODE
    """`redact` (default): replace with `[KIND]`; `mask`: keep a hint (last 4 digits, first letter of an email);
    `allow`: keep as is."""
    overrides: dict[PiiKind, PiiMode] = Field(default_factory=dict)
    """Per-kind exceptions, e.g. `{"email": "allow"}` for a workspace whose documents carry its own contacts."""

    def mode_for(self, kind: PiiKind) -> PiiMode:
        """The mode applied to findings of `kind`."""
        return self.overrides.get(kind, self.mode)

    @property
    def allows_everything(self) -> bool:
        """True when nothing would be changed (no need to scan)."""
        return all(self.mode_for(kind) == "allow" for kind in KINDS)


REDACT = PiiPolicy()
"""The default policy: every kind redacted."""


def _hint(finding: Finding) -> str:
    value = finding.value
    if finding.kind in ("email", "upi"):
        name, _, domain = value.partition("@")
        return f"{name[0]}***@{domain}"
    keep = 4
    seen = 0
    chars = list(value)
    for i in range(len(chars) - 1, -1, -1):
        if chars[i].isalnum():
            if seen >= keep:
                chars[i] = "X"
            seen += 1
    return "".join(chars)


def replacement(finding: Finding, mode: PiiMode) -> str:
    """What a finding becomes under `mode`."""
    if mode == "redact":
        return f"[{finding.kind.upper()}]"
    if mode == "mask":
        return _hint(finding)
    return finding.value


@dataclass(frozen=True)
class Masked:
    """Text with personal data masked, what was found, and how offsets of the original map into it."""

    text: str
    findings: tuple[Finding, ...]
    _ends: tuple[int, ...] = ()
    """Original end of each changed finding, in order."""
    _starts: tuple[int, ...] = ()
    """Original start of each changed finding."""
    _shifts: tuple[int, ...] = ()
    """How far text after each changed finding moved."""

    @property
    def changed(self) -> bool:
        """Whether masking changed anything."""
        return bool(self._ends)

    def position(self, offset: int) -> int:
        """Where `offset` of the original is in the masked text; inside a finding, where its replacement starts."""
        i = bisect_right(self._ends, offset)
        shift = self._shifts[i - 1] if i else 0
        if i < len(self._starts) and self._starts[i] < offset:
            return self._starts[i] + shift
        return offset + shift


def mask_text(text: str, policy: PiiPolicy = REDACT) -> Masked:
    """`text` with every finding replaced as `policy` says."""
    if not text or policy.allows_everything:
        return Masked(text, ())
    findings = find_pii(text, tuple(k for k in KINDS if policy.mode_for(k) != "allow"))
    parts: list[str] = []
    ends: list[int] = []
    starts: list[int] = []
    shifts: list[int] = []
    at = shift = 0
    for finding in findings:
        new = replacement(finding, policy.mode_for(finding.kind))
        if new == finding.value:
            continue
        parts += [text[at:finding.start], new]
        shift += len(new) - (finding.end - finding.start)
        ends.append(finding.end)
        starts.append(finding.start)
        shifts.append(shift)
        at = finding.end
    parts.append(text[at:])
    return Masked("".join(parts), tuple(findings), tuple(ends), tuple(starts), tuple(shifts))


def mask(text: str, policy: PiiPolicy = REDACT) -> str:
    """`text` with personal data masked by `policy` (redacted by default)."""
    return mask_text(text, policy).text


def mask_data(value: Any, policy: PiiPolicy = REDACT) -> Any:
    """A copy of JSON-like data (dicts, lists, strings...) with every string masked; keys are masked too."""
    if isinstance(value, str):
        return mask(value, policy)
    if isinstance(value, dict):
        return {mask(k, policy) if isinstance(k, str) else k: mask_data(v, policy) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_data(v, policy) for v in value]
    return value


def trace_anonymizer(policy: PiiPolicy = REDACT) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The `anonymizer` of a `langsmith.Client`: masks run inputs, outputs, metadata and errors before upload."""

    def anonymize(data: dict[str, Any]) -> dict[str, Any]:
        masked: dict[str, Any] = mask_data(data, policy)
        return masked

    return anonymize


# --------------------------------------------------------------------------------------------- logging


class PiiLogFilter(logging.Filter):
    """Masks the message, arguments, traceback and stack of a log record; never drops a record.

    A record whose formatted message holds personal data gets the masked message as `msg` and no `args`.
    """

    def __init__(self, policy: PiiPolicy = REDACT) -> None:
        super().__init__()
        self.policy = policy

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        masked = mask_text(message, self.policy)
        if masked.changed:
            record.msg, record.args = masked.text, None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info), self.policy)
        elif record.exc_text:
            record.exc_text = mask(record.exc_text, self.policy)
        if record.stack_info:
            record.stack_info = mask(record.stack_info, self.policy)
        return True


_installed: PiiLogFilter | None = None
_install_lock = threading.Lock()


def install_log_masking(policy: PiiPolicy = REDACT) -> PiiLogFilter:
    """Mask personal data in every log record this process creates, whatever logger or handler it goes to.

    Installed as the process's log record factory, because a filter on a logger misses records of its
    child loggers and a filter on handlers misses handlers added later (gunicorn's, Cloud Logging's).
    Calling it again only changes the policy.
    """
    global _installed
    with _install_lock:
        if _installed is not None:
            _installed.policy = policy
            return _installed
        log_filter = PiiLogFilter(policy)
        previous = logging.getLogRecordFactory()

        def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            log_filter.filter(record)
            return record

        logging.setLogRecordFactory(masked_record)
        _installed = log_filter
        return log_filter
