"""Envelope encryption of secrets at rest (OAuth tokens, API keys): AES-256-GCM with `cryptography`.

Each secret gets its own random 256-bit data key (DEK) and a random 96-bit nonce; the DEK is wrapped
(AES-256-GCM again) by a key-encryption key (KEK) from `MUSE_ENCRYPTION_KEYS`, named by its key id. A
sealed secret is a small JSON object, stored as `jsonb`:

    {"v": 1, "kid": "k2026a", "wn": <wrap nonce>, "wdek": <wrapped DEK>, "n": <nonce>, "ct": <ciphertext>}

(bytes as unpadded URL-safe base64). Both encryptions are bound to the secret's place by the associated
data `workspace|owner|field` (and the wrap also to the key id), so a ciphertext copied to another row,
workspace or column, or a key id edited, fails to open instead of decrypting as someone else's secret.

Rotation: new secrets are sealed under the active key id (`MUSE_ENCRYPTION_KEY_ID`); a secret sealed
under an older KEK still opens while that KEK is listed, and `rewrap` re-wraps only its DEK under the
active KEK (the ciphertext is unchanged), which readers do lazily when they meet one.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.errors import ConfigurationError, MuseError
from shared.settings import Settings

VERSION = 1


class SealedSecret(TypedDict):
    """A secret as it is stored: the wrapped data key and the ciphertext, never the plaintext."""

    v: int
    kid: str
    wn: str
    wdek: str
    n: str
    ct: str


class SecretUnreadable(MuseError):
    """A stored secret does not open: tampered with, moved to another row, or sealed under a key no longer
    listed in `MUSE_ENCRYPTION_KEYS`. Never says anything about the plaintext."""

    code = "secret_unreadable"
    http_status = 500


@dataclass(frozen=True)
class Binding:
    """Where a secret lives; its associated data, so the ciphertext is valid only there."""

    workspace_id: str
    owner_id: str
    """The row the secret belongs to (a connection id, an OAuth state, a workspace key's service)."""
    field: str
    """The column (`access_token`, `refresh_token`, `api_key`, `code_verifier`)."""

    def aad(self) -> bytes:
        """`workspace|owner|field` as bytes."""
        return f"{self.workspace_id}|{self.owner_id}|{self.field}".encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_keys(raw: str) -> dict[str, bytes]:
    """`kid:base64,kid:base64` → {kid: 32-byte key} (the format `Settings` has already checked)."""
    keys: dict[str, bytes] = {}
    for entry in raw.split(","):
        if not entry.strip():
            continue
        kid, _, material = entry.strip().partition(":")
        keys[kid] = _unb64(material.strip().rstrip("=").replace("+", "-").replace("/", "_"))
    return keys


@dataclass(frozen=True)
class Keyring:
    """The KEKs this process knows and the one it seals with."""

    keys: Mapping[str, bytes]
    active: str

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise ConfigurationError(f"MUSE_ENCRYPTION_KEY_ID {self.active!r} is not among MUSE_ENCRYPTION_KEYS "
                                     f"(ids: {', '.join(sorted(self.keys)) or 'none'}).")
        for kid, key in self.keys.items():
            if len(key) != 32:
                raise ConfigurationError(f"MUSE_ENCRYPTION_KEYS key {kid!r} must be 32 bytes, got {len(key)}.")

    def __repr__(self) -> str:
        return f"Keyring(active={self.active!r}, kids={sorted(self.keys)!r})"

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        """The deployment's keyring; without `MUSE_ENCRYPTION_KEYS` nothing secret can be stored."""
        if settings.encryption_keys is None:
            raise ConfigurationError("MUSE_ENCRYPTION_KEYS is not set: channel tokens and workspace keys cannot be "
                                     "stored. Set it to `kid:<32 random bytes, base64>` (e.g. `k1:$(openssl rand "
                                     "-base64 32)`).")
        keys = parse_keys(settings.encryption_keys.get_secret_value())
        return cls(keys=keys, active=settings.encryption_key_id or next(iter(keys)))

    def seal(self, plaintext: str, binding: Binding) -> SealedSecret:
        """Encrypt `plaintext` under a fresh data key wrapped by the active KEK."""
        dek = AESGCM.generate_key(bit_length=256)
        nonce, wrap_nonce = os.urandom(12), os.urandom(12)
        aad = binding.aad()
        ciphertext = AESGCM(dek).encrypt(nonce, plaintext.encode("utf-8"), aad)
        wrapped = AESGCM(self.keys[self.active]).encrypt(wrap_nonce, dek, self._wrap_aad(self.active, aad))
        return SealedSecret(v=VERSION, kid=self.active, wn=_b64(wrap_nonce), wdek=_b64(wrapped), n=_b64(nonce),
                            ct=_b64(ciphertext))

    def open(self, sealed: Mapping[str, Any], binding: Binding) -> str:
        """The plaintext of `sealed`, or `SecretUnreadable` (wrong place, tampered, or unknown key id)."""
        aad = binding.aad()
        try:
            kid = str(sealed["kid"])
            if sealed["v"] != VERSION:
                raise SecretUnreadable(f"The {binding.field} is sealed in format v{sealed['v']}, this build reads "
                                       f"v{VERSION}.")
            if kid not in self.keys:
                raise SecretUnreadable(f"The {binding.field} is sealed under key {kid!r}, which MUSE_ENCRYPTION_KEYS "
                                       "no longer lists; add it back to read (and re-wrap) it.")
            dek = AESGCM(self.keys[kid]).decrypt(_unb64(sealed["wn"]), _unb64(sealed["wdek"]),
                                                 self._wrap_aad(kid, aad))
            return AESGCM(dek).decrypt(_unb64(sealed["n"]), _unb64(sealed["ct"]), aad).decode("utf-8")
        except (InvalidTag, KeyError, TypeError, ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise SecretUnreadable(f"The stored {binding.field} does not open: it was altered or does not belong "
                                   "to this row.") from exc

    def needs_rewrap(self, sealed: Mapping[str, Any]) -> bool:
        """Whether `sealed` is wrapped by a KEK other than the active one."""
        return sealed.get("kid") != self.active

    def rewrap(self, sealed: Mapping[str, Any], binding: Binding) -> SealedSecret:
        """`sealed` with its data key re-wrapped under the active KEK; the ciphertext is kept as it is.

        Raises `SecretUnreadable` when it does not open (so a tampered secret is never blessed by a rewrap).
        """
        aad = binding.aad()
        kid = str(sealed.get("kid"))
        self.open(sealed, binding)
        dek = AESGCM(self.keys[kid]).decrypt(_unb64(sealed["wn"]), _unb64(sealed["wdek"]), self._wrap_aad(kid, aad))
        wrap_nonce = os.urandom(12)
        wrapped = AESGCM(self.keys[self.active]).encrypt(wrap_nonce, dek, self._wrap_aad(self.active, aad))
        return SealedSecret(v=VERSION, kid=self.active, wn=_b64(wrap_nonce), wdek=_b64(wrapped), n=sealed["n"],
                            ct=sealed["ct"])

    @staticmethod
    def _wrap_aad(kid: str, aad: bytes) -> bytes:
        return kid.encode() + b"|" + aad
