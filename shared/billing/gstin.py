"""GSTINs and GST state codes: the format, the state code and the Luhn mod 36 check character.

A GSTIN is 15 characters: a 2-digit state code, the holder's PAN (`AAAAA9999A`), an entity number
(`1-9A-Z`), `Z`, and a check character computed over the first 14 with Luhn mod 36 (factors 1, 2, 1, 2, …
from the left over `0-9A-Z`). Each failure names its rule (`format`, `state_code`, `checksum`), so the
API can tell the user which part to fix.
"""

from __future__ import annotations

import re
from typing import Final, Literal

ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
GSTIN_PATTERN: Final = re.compile(r"^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$")

STATES: Final[dict[str, str]] = {
    "01": "Jammu and Kashmir", "02": "Himachal Pradesh", "03": "Punjab", "04": "Chandigarh", "05": "Uttarakhand",
    "06": "Haryana", "07": "Delhi", "08": "Rajasthan", "09": "Uttar Pradesh", "10": "Bihar", "11": "Sikkim",
    "12": "Arunachal Pradesh", "13": "Nagaland", "14": "Manipur", "15": "Mizoram", "16": "Tripura",
    "17": "Meghalaya", "18": "Assam", "19": "West Bengal", "20": "Jharkhand", "21": "Odisha", "22": "Chhattisgarh",
    "23": "Madhya Pradesh", "24": "Gujarat", "26": "Dadra and Nagar Haveli and Daman and Diu",
    "27": "Maharashtra", "29": "Karnataka", "30": "Goa", "31": "Lakshadweep", "32": "Kerala", "33": "Tamil Nadu",
    "34": "Puducherry", "35": "Andaman and Nicobar Islands", "36": "Telangana", "37": "Andhra Pradesh",
    "38": "Ladakh", "97": "Other Territory",
}
"""GST state codes in force, with their names. 25 (Daman and Diu, merged into 26 in 2020) and 28 (Andhra
Pradesh before bifurcation) are no longer issued; 99 (Centre Jurisdiction) is not a place of supply."""
GSTIN_ONLY_STATES: Final[dict[str, str]] = {"25": "Daman and Diu", "28": "Andhra Pradesh (old)",
                                            "99": "Centre Jurisdiction"}
"""Codes that still appear in valid GSTINs (older registrations, the Centre) but name no current state."""
UNION_TERRITORIES_WITHOUT_LEGISLATURE: Final = frozenset({"04", "26", "31", "35", "38", "97"})
"""Where the state half of an intra-state supply is UTGST rather than SGST."""

_ALIASES: Final[dict[str, str]] = {
    "jammu & kashmir": "01", "j&k": "01", "new delhi": "07", "nct of delhi": "07", "orissa": "21",
    "pondicherry": "34", "andaman & nicobar islands": "35", "andaman and nicobar": "35",
    "dadra & nagar haveli and daman & diu": "26", "dadra and nagar haveli": "26", "daman and diu": "26",
    "uttaranchal": "05", "chattisgarh": "22",
}

GstinRule = Literal["format", "state_code", "checksum"]


class InvalidGstin(ValueError):
    """A GSTIN that breaks `rule`; the message says what a valid one looks like."""

    def __init__(self, rule: GstinRule, message: str) -> None:
        super().__init__(message)
        self.rule: GstinRule = rule


def check_character(first14: str) -> str:
    """The 15th character of a GSTIN whose first 14 are `first14` (Luhn mod 36)."""
    total = 0
    for position, char in enumerate(first14.upper()):
        value = ALPHABET.index(char) * (2 if position % 2 else 1)
        total += value // 36 + value % 36
    return ALPHABET[(36 - total % 36) % 36]


def normalize_gstin(raw: str) -> str:
    """`raw` upper-cased without spaces, checked for format, state code and check character.

    Raises `InvalidGstin` naming the first rule it breaks.
    """
    gstin = re.sub(r"\s+", "", raw).upper()
    if not GSTIN_PATTERN.fullmatch(gstin):
        raise InvalidGstin("format", f"{raw[:40]!r} is not a GSTIN: 15 characters, a 2-digit state code, a PAN "
                                     "(5 letters, 4 digits, a letter), an entity number (1-9 or A-Z), Z, and a "
                                     "check character, e.g. 27AAPFU0939F1ZV.")
    if gstin[:2] not in STATES and gstin[:2] not in GSTIN_ONLY_STATES:
        raise InvalidGstin("state_code", f"GSTIN {gstin} starts with {gstin[:2]}, which is no GST state code "
                                         "(01-38, 97 or 99).")
    expected = check_character(gstin[:14])
    if gstin[14] != expected:
        raise InvalidGstin("checksum", f"GSTIN {gstin} fails its checksum: its last character should be "
                                       f"{expected!r}; check the number for a typo.")
    return gstin


def state_code(raw: str) -> str:
    """The 2-digit state code for a code (`29`, `9`) or a name (`Karnataka`, any case); `ValueError` if none."""
    text = raw.strip()
    if text.isdigit() and len(text) <= 2:
        code = text.zfill(2)
        if code in STATES:
            return code
        raise ValueError(f"{text} is no GST state code in use (01-38 or 97).")
    key = re.sub(r"\s+", " ", text).lower()
    for code, name in STATES.items():
        if name.lower() == key:
            return code
    if key in _ALIASES:
        return _ALIASES[key]
    raise ValueError(f"{text[:60]!r} is no Indian state or union territory; send its GST state code (e.g. 29) or "
                     "its name (e.g. Karnataka).")


def state_name(code: str) -> str:
    """The name of a state code (current or GSTIN-only)."""
    return STATES.get(code) or GSTIN_ONLY_STATES[code]
