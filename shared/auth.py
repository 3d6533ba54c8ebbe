"""Verifying Supabase access tokens: HS256 with the project's JWT secret, ES256/RS256 via JWKS."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from uuid import UUID

import jwt

from shared.errors import ConfigurationError, Unauthorized
from shared.settings import Settings

ASYMMETRIC = ("ES256", "RS256")


@dataclass(frozen=True)
class Principal:
    """A verified caller."""

    user_id: UUID
    claims: dict[str, Any]

    @property
    def requested_workspace(self) -> str | None:
        """The workspace named in the token's `app_metadata`, if any."""
        return (self.claims.get("app_metadata") or {}).get("workspace_id")


@lru_cache(maxsize=4)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=600, timeout=5)


def verify_token(authorization: str | None, settings: Settings) -> Principal:
    """The caller of a frontend request, from `Authorization: Bearer <Supabase access token>`."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("Send `Authorization: Bearer <Supabase access token>`.")
    token = authorization[7:].strip()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"The bearer token is not a JWT: {exc}.") from exc
    alg = header.get("alg")
    options: jwt.types.Options = {"require": ["exp", "sub", "aud"]}
    try:
        if alg == "HS256":
            if settings.supabase_jwt_secret is None:
                raise Unauthorized("HS256 tokens are not accepted: SUPABASE_JWT_SECRET is not configured.")
            claims = jwt.decode(token, settings.supabase_jwt_secret.get_secret_value(), algorithms=["HS256"],
                                audience=settings.jwt_audience, options=options)
        elif alg in ASYMMETRIC:
            jwks_url = settings.supabase_url.rstrip("/") + "/auth/v1/.well-known/jwks.json"
            try:
                key = _jwks_client(jwks_url).get_signing_key_from_jwt(token).key
            except jwt.PyJWKClientConnectionError as exc:
                raise ConfigurationError(f"Cannot fetch Supabase JWKS from {jwks_url!r}: {exc}") from exc
            claims = jwt.decode(token, key, algorithms=list(ASYMMETRIC), audience=settings.jwt_audience,
                                options=options)
        else:
            raise Unauthorized(f"Unsupported token algorithm {alg!r}; Supabase issues HS256, ES256 or RS256.")
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The access token has expired; refresh the Supabase session.") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"Invalid access token: {exc}.") from exc
    try:
        user_id = UUID(str(claims["sub"]))
    except ValueError as exc:
        raise Unauthorized(f"Token subject {claims['sub']!r} is not a user id.") from exc
    return Principal(user_id=user_id, claims=claims)
