"""Envelope encryption of stored secrets: round trip, tamper, AAD swap, unknown key ids, rotation by re-wrap."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
from pydantic import ValidationError

from shared.errors import ConfigurationError
from shared.security.envelope import Binding, Keyring, SecretUnreadable, parse_keys
from shared.settings import Settings

OLD, NEW = os.urandom(32), os.urandom(32)
HERE = Binding("ws-1", "conn-1", "access_token")
SECRET = "ya29.a0-very-secret-token"


def _ring(active: str = "old", **keys: bytes) -> Keyring:
    return Keyring(keys=keys or {"old": OLD}, active=active)


def _flip(text: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    raw[0] ^= 1
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def test_a_sealed_secret_opens_where_it_was_sealed_and_holds_no_plaintext() -> None:
    """Sealing twice gives two different ciphertexts (fresh key and nonce), each opening to the secret."""
    ring = _ring()
    first, second = ring.seal(SECRET, HERE), ring.seal(SECRET, HERE)
    assert first["ct"] != second["ct"] and first["wdek"] != second["wdek"]
    assert SECRET not in repr(first) and SECRET.encode() not in repr(first).encode()
    assert ring.open(first, HERE) == ring.open(second, HERE) == SECRET


@pytest.mark.parametrize("field", ["ct", "n", "wdek", "wn"])
def test_a_tampered_part_does_not_open(field: str) -> None:
    """One flipped bit in any part fails the authentication tag."""
    ring = _ring()
    sealed: dict[str, Any] = dict(ring.seal(SECRET, HERE))
    sealed[field] = _flip(sealed[field])
    with pytest.raises(SecretUnreadable, match="altered or does not belong"):
        ring.open(sealed, HERE)


@pytest.mark.parametrize("elsewhere", [Binding("ws-2", "conn-1", "access_token"),
                                       Binding("ws-1", "conn-2", "access_token"),
                                       Binding("ws-1", "conn-1", "refresh_token")])
def test_a_secret_moved_to_another_workspace_row_or_column_does_not_open(elsewhere: Binding) -> None:
    """The associated data binds workspace, row and column."""
    ring = _ring()
    with pytest.raises(SecretUnreadable):
        ring.open(ring.seal(SECRET, HERE), elsewhere)


def test_an_edited_key_id_or_an_unknown_one_does_not_open() -> None:
    """The wrap is bound to its key id: relabelling it under another listed key fails; an unlisted key is named."""
    both = _ring("old", old=OLD, new=NEW)
    sealed: dict[str, Any] = dict(both.seal(SECRET, HERE))
    with pytest.raises(SecretUnreadable):
        both.open({**sealed, "kid": "new"}, HERE)
    with pytest.raises(SecretUnreadable, match="'old'.*no longer lists"):
        _ring("new", new=NEW).open(sealed, HERE)
    with pytest.raises(SecretUnreadable):
        both.open({**sealed, "v": 2}, HERE)
    with pytest.raises(SecretUnreadable):
        both.open({"kid": "old"}, HERE)


def test_rotation_rewraps_the_data_key_only_and_the_old_key_can_then_go() -> None:
    """After rotation an old secret still opens; re-wrapped, it keeps its ciphertext and opens without the old KEK."""
    sealed = _ring().seal(SECRET, HERE)
    rotated = _ring("new", old=OLD, new=NEW)
    assert rotated.needs_rewrap(sealed) and rotated.open(sealed, HERE) == SECRET
    rewrapped = rotated.rewrap(sealed, HERE)
    assert rewrapped["kid"] == "new" and rewrapped["ct"] == sealed["ct"] and not rotated.needs_rewrap(rewrapped)
    assert _ring("new", new=NEW).open(rewrapped, HERE) == SECRET
    with pytest.raises(SecretUnreadable):
        rotated.rewrap({**sealed, "ct": _flip(sealed["ct"])}, HERE)
    with pytest.raises(SecretUnreadable):
        rotated.rewrap(sealed, Binding("ws-2", "conn-1", "access_token"))


def test_the_keyring_comes_from_settings_and_refuses_bad_configuration() -> None:
    """`kid:base64` pairs (standard or URL-safe, padded or not); the active id must be listed; keys are 32 bytes."""
    env = {"DATABASE_URL": "postgresql://x", "QSTASH_TOKEN": "t", "QSTASH_CURRENT_SIGNING_KEY": "a",
           "QSTASH_NEXT_SIGNING_KEY": "b", "UPSTASH_REDIS_REST_URL": "http://r", "UPSTASH_REDIS_REST_TOKEN": "t",
           "GEMINI_API_KEY": "g", "TAVILY_API_KEY": "t", "PHONEPE_CLIENT_ID": "p", "PHONEPE_CLIENT_SECRET": "s",
           "PHONEPE_WEBHOOK_USERNAME": "u", "PHONEPE_WEBHOOK_PASSWORD": "p"}
    std, url = base64.b64encode(OLD).decode(), base64.urlsafe_b64encode(NEW).decode().rstrip("=")
    settings = Settings(**{**env, "MUSE_ENCRYPTION_KEYS": f"old:{std}, new:{url}", "MUSE_ENCRYPTION_KEY_ID": "new"})
    ring = Keyring.from_settings(settings)
    assert ring.keys == {"old": OLD, "new": NEW} and ring.active == "new"
    assert "old" in repr(ring) and std not in repr(ring) and std not in repr(settings)
    assert Keyring.from_settings(Settings(**{**env, "MUSE_ENCRYPTION_KEYS": f"old:{std}"})).active == "old"
    with pytest.raises(ConfigurationError, match="MUSE_ENCRYPTION_KEYS is not set"):
        Keyring.from_settings(Settings(**env))
    with pytest.raises(ConfigurationError, match="'gone' is not among"):
        Keyring.from_settings(Settings(**{**env, "MUSE_ENCRYPTION_KEYS": f"old:{std}",
                                          "MUSE_ENCRYPTION_KEY_ID": "gone"}))
    for bad in ("nokid", f"old:{base64.b64encode(b'short').decode()}", f"b@d:{std}"):
        with pytest.raises(ValidationError, match="MUSE_ENCRYPTION_KEYS"):
            Settings(**{**env, "MUSE_ENCRYPTION_KEYS": bad})
    assert parse_keys(f"a:{std},") == {"a": OLD}
    blank = Settings(**{**env, "MUSE_ENCRYPTION_KEYS": " ", "MUSE_ENCRYPTION_KEY_ID": "", "X_CLIENT_SECRET": "",
                        "MUSE_CHANNELS_RETURN_URL": ""})
    assert (blank.encryption_keys, blank.encryption_key_id, blank.x_client_secret, blank.channels_return_url) == (
        None, None, None, None)
