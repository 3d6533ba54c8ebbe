"""Verifying Supabase access tokens (HS256 with the project's JWT secret, ES256/RS256 via JWKS) and
choosing the caller's workspace.

Only a signed-in user's token is a caller: Supabase's `role` claim must be `authenticated` (an `anon` or
`service_role` key is not a user). A verified token whose user belongs to no workspace is treated as no
user at all (401): a deleted or never-invited account never learns which workspaces exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from uuid import UUID

import jwt

from shared.errors import ConfigurationError, InvalidRequest, NotFound, Unauthorized
from shared.http import check_json_strings
from shared.settings import Settings

ASYMMETRIC = ("ES256", "RS256")
USER_ROLE = "authenticated"


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
        check_json_strings(claims)
    except InvalidRequest as exc:
        raise Unauthorized(f"The token's claims hold text that cannot be stored ({exc.message}).") from exc
    metadata = claims.get("app_metadata", {})
    if not isinstance(metadata, dict) or not isinstance(metadata.get("workspace_id", ""), str):
        raise Unauthorized("The token's `app_metadata` must be an object whose `workspace_id` is a string; "
                           "sign in again to get a token Supabase issued.")
    if claims.get("role") != USER_ROLE:
        raise Unauthorized(f"The token's `role` is {claims.get('role')!r}; only a signed-in user's access token "
                           f"(role {USER_ROLE!r}) is accepted, never an anon or service key.")
    try:
        user_id = UUID(str(claims["sub"]))
    except ValueError as exc:
        raise Unauthorized(f"Token subject {claims['sub']!r} is not a user id.") from exc
    return Principal(user_id=user_id, claims=claims)


def choose_workspace(memberships: list[str], principal: Principal, requested: str | None) -> str:
    """The workspace a request acts in: `X-Workspace-Id`, else the token's, else the caller's only one.

    `memberships` are the caller's workspaces as row-level security shows them. None at all means the
    token names no user Muse knows (deleted, or never invited): 401, whichever workspace it asks for.
    """
    if not memberships:
        raise Unauthorized("The token's user belongs to no workspace (or no longer exists); sign in with an "
                           "invited account, or ask an owner to invite you.")
    if requested is not None:
        try:
            UUID(requested)
        except ValueError as exc:
            raise InvalidRequest(f"`X-Workspace-Id` must be a workspace id (a UUID); got {requested!r}.",
                                 details={"field": "X-Workspace-Id", "value": requested}) from exc
    wanted = requested or principal.requested_workspace
    if wanted:
        if wanted not in memberships:
            raise NotFound(f"Workspace {wanted!r} does not exist or you are not a member.")
        return wanted
    if len(memberships) > 1:
        raise InvalidRequest("You belong to several workspaces: send `X-Workspace-Id` to choose one.")
    return memberships[0]
