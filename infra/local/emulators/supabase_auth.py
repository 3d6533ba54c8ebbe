"""Supabase Auth (GoTrue) emulator: the JWKS document and `GET /auth/v1/user` for asymmetric JWTs.

Only the two routes a backend needs to trust a user's access token are served (reference
`sdk-wire-details.md` §4.2): `supabase_auth`'s `get_claims` fetches the JWKS and verifies locally, and
`get_user` asks `/auth/v1/user`, which here verifies the token against the same JWKS (ES256/RS256 only,
as on projects with asymmetric signing keys) and answers a User built from the token's claims.

`generate_es256_jwk` and `sign_access_token` let tests and the local stack mint keys and tokens that
look like Supabase's.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import flask
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from infra.local.emulators.config import EmulatorConfig

ALLOWED_ALGORITHMS = ("ES256", "RS256")
API_VERSION_HEADER = "X-Supabase-Api-Version"
API_VERSION_2024_01_01 = "2024-01-01"


class BadJWT(Exception):
    """A token GoTrue would refuse with 403 `bad_jwt`; the message follows `invalid JWT: `."""


def create_app(config: EmulatorConfig) -> flask.Flask:
    """Build the Supabase Auth emulator serving `config.supabase_jwks`."""
    app = flask.Flask(__name__)

    @app.get("/auth/v1/.well-known/jwks.json")
    def jwks() -> Any:
        return {"keys": config.supabase_jwks.get("keys", [])}

    @app.get("/auth/v1/user")
    def user() -> Any:
        scheme, _, token = flask.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(401, "no_authorization", "This endpoint requires a valid Bearer token")
        try:
            claims = _verify(token.strip(), config.supabase_jwks)
        except BadJWT as exc:
            return _error(403, "bad_jwt", f"invalid JWT: {exc}")
        return _user_from_claims(claims)

    return app


def generate_es256_jwk(kid: str) -> tuple[str, dict[str, Any]]:
    """A fresh P-256 signing key like a Supabase project's.

    Returns:
        The private key as PKCS#8 PEM, and its public JWK (`kid`, `alg: ES256`, `use: sig`) for the JWKS.
    """
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_jwk = ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    public_jwk.update(kid=kid, alg="ES256", use="sig", key_ops=["verify"], ext=True)
    return pem, public_jwk


def sign_access_token(
    private_key_pem: str,
    kid: str,
    *,
    user_id: str,
    issuer: str,
    email: str | None = None,
    expires_in: int = 3600,
    role: str = "authenticated",
    user_metadata: dict[str, Any] | None = None,
    app_metadata: dict[str, Any] | None = None,
) -> str:
    """An ES256 access token with the claims Supabase Auth puts in a user session.

    Args:
        private_key_pem: from `generate_es256_jwk`.
        kid: the key id published in the JWKS.
        user_id: the `sub` claim, a UUID.
        issuer: `<supabase url>/auth/v1`.
        email: the user's email, if any.
        expires_in: seconds until `exp`; negative values mint expired tokens for tests.
        role: the Postgres role RLS runs as.
        user_metadata: `raw_user_meta_data` of the user.
        app_metadata: defaults to the email provider.
    """
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": user_id,
        "aud": "authenticated",
        "exp": now + expires_in,
        "iat": now,
        "email": email or "",
        "phone": "",
        "app_metadata": app_metadata or {"provider": "email", "providers": ["email"]},
        "user_metadata": user_metadata or {},
        "role": role,
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": now}],
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
    }
    return jwt.encode(claims, private_key_pem, algorithm="ES256", headers={"kid": kid})


def _error(status: int, error_code: str, message: str) -> Any:
    """GoTrue's error body: `{code, message}` for API version 2024-01-01 clients, else the legacy shape."""
    if flask.request.headers.get(API_VERSION_HEADER, "") >= API_VERSION_2024_01_01:
        body: dict[str, Any] = {"code": error_code, "message": message}
        return body, status, {API_VERSION_HEADER: API_VERSION_2024_01_01}
    return {"code": status, "error_code": error_code, "msg": message}, status


def _signing_key(header: dict[str, Any], jwks: dict[str, Any]) -> jwt.PyJWK:
    """The JWKS key named by the token's `kid`, or the only key of the right type when there is no `kid`."""
    keys = [key for key in jwks.get("keys", []) if key.get("alg", header["alg"]) == header["alg"]]
    kid = header.get("kid")
    matching = [key for key in keys if key.get("kid") == kid] if kid else keys
    if len(matching) != 1:
        raise BadJWT(f"no signing key in the JWKS for kid {kid!r} and alg {header['alg']!r}")
    try:
        return jwt.PyJWK(matching[0], algorithm=header["alg"])
    except jwt.PyJWKError as exc:
        raise BadJWT(f"the JWKS key for kid {kid!r} is unusable: {exc}") from exc


def _verify(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """Check signature, `exp` and `sub` as GoTrue does before it looks the user up."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise BadJWT(f"unable to parse or verify signature, {exc}") from exc
    if header.get("alg") not in ALLOWED_ALGORITHMS:
        raise BadJWT(f"unable to parse or verify signature, signing method {header.get('alg')} is invalid")
    key = _signing_key(header, jwks)
    try:
        claims = jwt.decode(
            token, key, algorithms=[header["alg"]], options={"verify_aud": False, "require": ["exp", "sub"]}
        )
    except jwt.InvalidTokenError as exc:
        raise BadJWT(f"unable to parse or verify signature, {exc}") from exc
    try:
        uuid.UUID(str(claims["sub"]))
    except ValueError as exc:
        raise BadJWT("invalid claim: sub claim must be a UUID") from exc
    return claims


def _user_from_claims(claims: dict[str, Any]) -> dict[str, Any]:
    """A Supabase User for the token's subject; the emulator keeps no user table, so claims are the truth."""
    aud = claims.get("aud", "authenticated")
    created_at = dt.datetime.fromtimestamp(claims.get("iat", claims["exp"]), tz=dt.UTC).isoformat()
    email = claims.get("email") or None
    return {
        "id": claims["sub"],
        "aud": aud[0] if isinstance(aud, list) and aud else aud,
        "role": claims.get("role", "authenticated"),
        "email": email,
        "phone": claims.get("phone", ""),
        "email_confirmed_at": created_at if email else None,
        "confirmed_at": created_at,
        "last_sign_in_at": created_at,
        "app_metadata": claims.get("app_metadata", {}),
        "user_metadata": claims.get("user_metadata", {}),
        "identities": [],
        "created_at": created_at,
        "updated_at": created_at,
        "is_anonymous": bool(claims.get("is_anonymous", False)),
    }
