"""The `Upstash-Signature` JWT every delivery carries, and QStash-style random ids."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time

import jwt

SIGNATURE_LIFETIME_SECONDS = 300
_ID_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def sign(body: bytes, url: str, key: str, now: float | None = None) -> str:
    """The `Upstash-Signature` JWT for delivering `body` to exactly `url` (no `aud`, padded hash)."""
    issued = int(time.time() if now is None else now)
    body_hash = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode()
    claims = {
        "iss": "Upstash",
        "sub": url,
        "exp": issued + SIGNATURE_LIFETIME_SECONDS,
        "nbf": issued,
        "iat": issued,
        "jti": "jwt_" + random_id(26),
        "body": body_hash,
    }
    return jwt.encode(claims, key, algorithm="HS256")


def random_id(length: int) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))
