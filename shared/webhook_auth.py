"""PhonePe webhook authentication: `Authorization: SHA256(username:password)` in lowercase hex.

The header is a static hash of credentials, not a signature of the body, so a verified webhook is
only a trigger: the payment step confirms state and amount through the Order Status API.
"""

from __future__ import annotations

import hashlib
import hmac


def expected_authorization(username: str, password: str) -> str:
    """The header value PhonePe sends for these dashboard credentials."""
    return hashlib.sha256(f"{username}:{password}".encode()).hexdigest()


def is_authorized(header: str | None, *, username: str, password: str) -> bool:
    """Constant-time check of the webhook's Authorization header (any text; non-ASCII simply does not match)."""
    if not header:
        return False
    got = header.strip()
    if got.lower().startswith("sha256 "):
        got = got[7:].strip()
    expected = expected_authorization(username, password).encode()
    return hmac.compare_digest(got.lower().encode("utf-8", "replace"), expected)
