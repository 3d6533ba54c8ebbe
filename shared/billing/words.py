"""Rupee amounts as an Indian invoice prints them: `₹1,18,000.50` and "Rupees One Lakh Eighteen Thousand
and Fifty Paise Only" (Indian numbering: thousand, lakh = 1,00,000, crore = 1,00,00,000).

Amounts come in integer paise, as PhonePe and the invoices keep them.
"""

from __future__ import annotations

_ONES = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten", "Eleven", "Twelve",
         "Thirteen", "Fourteen", "Fifteen", "Sixteen", "Seventeen", "Eighteen", "Nineteen")
_TENS = ("", "", "Twenty", "Thirty", "Forty", "Fifty", "Sixty", "Seventy", "Eighty", "Ninety")


def _below_hundred(n: int) -> str:
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


def _below_thousand(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    parts = [f"{_ONES[hundreds]} Hundred"] if hundreds else []
    if rest:
        parts.append(_below_hundred(rest))
    return " ".join(parts)


def number_in_words(n: int) -> str:
    """A whole number in words with Indian grouping: 12345678 → "One Crore Twenty-Three Lakh Forty-Five
    Thousand Six Hundred Seventy-Eight" (crores above 99 are counted in words too: "One Hundred Crore")."""
    if n < 0:
        raise ValueError(f"Only amounts of zero or more have words here; got {n}.")
    if n == 0:
        return "Zero"
    crores, rest = divmod(n, 10_000_000)
    lakhs, rest = divmod(rest, 100_000)
    thousands, rest = divmod(rest, 1000)
    parts = []
    if crores:
        parts.append(f"{number_in_words(crores)} Crore")
    if lakhs:
        parts.append(f"{_below_hundred(lakhs)} Lakh")
    if thousands:
        parts.append(f"{_below_hundred(thousands)} Thousand")
    if rest:
        parts.append(_below_thousand(rest))
    return " ".join(parts)


def amount_in_words(paise: int) -> str:
    """`paise` as an invoice's total in words: 11800050 → "Rupees One Lakh Eighteen Thousand and Fifty Paise Only"."""
    if paise < 0:
        raise ValueError(f"Only amounts of zero or more have words here; got {paise} paise.")
    rupees, fraction = divmod(paise, 100)
    if rupees and fraction:
        return f"Rupees {number_in_words(rupees)} and {number_in_words(fraction)} Paise Only"
    if fraction:
        return f"{number_in_words(fraction)} Paise Only"
    return f"Rupees {number_in_words(rupees)} Only"


def format_inr(paise: int, *, symbol: str = "₹") -> str:
    """`paise` as rupees with Indian digit grouping and two decimals: 12345678950 → `₹12,34,56,789.50`."""
    sign = "-" if paise < 0 else ""
    rupees, fraction = divmod(abs(paise), 100)
    digits = str(rupees)
    if len(digits) > 3:
        head, tail = digits[:-3], digits[-3:]
        groups: list[str] = []
        while len(head) > 2:
            groups.insert(0, head[-2:])
            head = head[:-2]
        groups.insert(0, head)
        digits = ",".join(groups) + "," + tail
    return f"{sign}{symbol}{digits}.{fraction:02d}"
