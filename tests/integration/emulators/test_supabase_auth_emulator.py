"""The Supabase Auth emulator, checked with PyJWT's JWKS client and the official `supabase` client."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import flask
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from supabase import Client, ClientOptions, create_client
from supabase_auth.errors import AuthApiError
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.supabase_auth import create_app, generate_es256_jwk, sign_access_token
from infra.local.serve import serve_in_thread

USER_ID = "5f0c3a1e-7c1b-4f7a-9d1e-2b9a8c7d6e5f"


@dataclass(frozen=True)
class Project:
    """A running emulator and the keys its JWKS publishes."""

    url: str
    es256_pem: str
    rs256_pem: str

    @property
    def issuer(self) -> str:
        return f"{self.url}/auth/v1"

    def token(self, **kwargs: object) -> str:
        return sign_access_token(
            self.es256_pem, "es-key", user_id=USER_ID, issuer=self.issuer, email="asha@example.in", **kwargs
        )


def _rs256_jwk(kid: str) -> tuple[str, dict]:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, {**RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True), "kid": kid, "alg": "RS256"}


@pytest.fixture(scope="module")
def project() -> Iterator[Project]:
    """The emulator mounted under `/supabase` with one ES256 and one RS256 key."""
    es256_pem, es256_jwk = generate_es256_jwk("es-key")
    rs256_pem, rs256_jwk = _rs256_jwk("rs-key")
    config = EmulatorConfig(database_url="", supabase_jwks={"keys": [es256_jwk, rs256_jwk]})
    server = serve_in_thread(DispatcherMiddleware(flask.Flask("root"), {"/supabase": create_app(config)}))
    try:
        yield Project(url=f"{server.url}/supabase", es256_pem=es256_pem, rs256_pem=rs256_pem)
    finally:
        server.stop()


@pytest.fixture
def supabase(project: Project) -> Client:
    return create_client(
        project.url,
        "sb_publishable_local",
        options=ClientOptions(auto_refresh_token=False, persist_session=False),
    )


def _get_user(project: Project, token: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{project.url}/auth/v1/user", headers={"Authorization": f"Bearer {token}", **headers})


class TestKeys:
    def test_generated_jwk_is_public_es256(self) -> None:
        """The helper returns a PEM private key and a public-only JWK that PyJWT can load."""
        pem, jwk = generate_es256_jwk("k1")
        assert pem.startswith("-----BEGIN PRIVATE KEY-----")
        assert {"kid": "k1", "alg": "ES256", "use": "sig", "kty": "EC", "crv": "P-256"}.items() <= jwk.items()
        assert "d" not in jwk
        assert jwt.PyJWK(jwk).algorithm_name == "ES256"

    def test_jwks_document(self, project: Project) -> None:
        """The configured JWKS is served at the well-known path."""
        keys = httpx.get(f"{project.url}/auth/v1/.well-known/jwks.json").json()["keys"]
        assert [key["kid"] for key in keys] == ["es-key", "rs-key"]


class TestPyJWT:
    def test_pyjwk_client_verifies_token(self, project: Project) -> None:
        """The documented local verification path accepts the emulator's keys and tokens."""
        token = project.token()
        jwks_client = jwt.PyJWKClient(f"{project.url}/auth/v1/.well-known/jwks.json")
        key = jwks_client.get_signing_key_from_jwt(token).key
        claims = jwt.decode(
            token,
            key,
            algorithms=["ES256", "RS256"],
            audience="authenticated",
            issuer=project.issuer,
            options={"require": ["exp", "sub", "aud"]},
        )
        assert claims["sub"] == USER_ID
        assert claims["role"] == "authenticated"
        assert claims["email"] == "asha@example.in"


class TestSupabaseClient:
    def test_get_claims_verifies_against_jwks(self, supabase: Client, project: Project) -> None:
        """`auth.get_claims` fetches the JWKS from the emulator and verifies the ES256 signature."""
        response = supabase.auth.get_claims(project.token(user_metadata={"name": "Asha"}))
        assert response is not None
        assert response["claims"]["sub"] == USER_ID
        assert response["claims"]["user_metadata"] == {"name": "Asha"}
        assert response["headers"]["kid"] == "es-key"

    def test_get_user_returns_user(self, supabase: Client, project: Project) -> None:
        """`auth.get_user` gets a User built from the verified token."""
        response = supabase.auth.get_user(project.token(app_metadata={"provider": "google"}))
        assert response is not None
        user = response.user
        assert user.id == USER_ID
        assert user.aud == "authenticated"
        assert user.role == "authenticated"
        assert user.email == "asha@example.in"
        assert user.app_metadata == {"provider": "google"}
        assert user.created_at is not None

    def test_get_user_rejects_hs256(self, supabase: Client) -> None:
        """Symmetric tokens are refused: the emulated project signs with asymmetric keys only."""
        forged = jwt.encode(
            {"sub": USER_ID, "aud": "authenticated", "exp": int(time.time()) + 60},
            "x" * 32,
            algorithm="HS256",
        )
        with pytest.raises(AuthApiError) as raised:
            supabase.auth.get_user(forged)
        assert raised.value.status == 403
        assert raised.value.code == "bad_jwt"
        assert "HS256" in raised.value.message


class TestUserEndpoint:
    def test_rs256_token_is_accepted(self, project: Project) -> None:
        """RS256 tokens verify against the RSA key of the JWKS."""
        token = jwt.encode(
            {"sub": USER_ID, "aud": "authenticated", "exp": int(time.time()) + 60, "role": "authenticated"},
            project.rs256_pem,
            algorithm="RS256",
            headers={"kid": "rs-key"},
        )
        response = _get_user(project, token)
        assert response.status_code == 200
        assert response.json()["id"] == USER_ID

    @pytest.mark.parametrize(
        ("make_token", "fragment"),
        [
            (lambda p: p.token(expires_in=-10), "expired"),
            (lambda p: p.token()[:-4] + "AAAA", "verif"),
            (
                lambda p: sign_access_token(p.es256_pem, "other-kid", user_id=USER_ID, issuer=p.issuer),
                "other-kid",
            ),
            (
                lambda p: sign_access_token(p.es256_pem, "es-key", user_id="not-a-uuid", issuer=p.issuer),
                "UUID",
            ),
            (
                lambda p: jwt.encode(
                    {"sub": str(uuid.uuid4()), "exp": int(time.time()) + 60},
                    p.rs256_pem,
                    algorithm="RS256",
                    headers={"kid": "es-key"},
                ),
                "es-key",
            ),
            (lambda p: "not.a.jwt", "invalid JWT"),
        ],
        ids=["expired", "tampered", "unknown-kid", "sub-not-uuid", "alg-key-mismatch", "garbage"],
    )
    def test_bad_tokens_are_403_bad_jwt(
        self, project: Project, make_token: Callable[[Project], str], fragment: str
    ) -> None:
        """Invalid tokens get GoTrue's legacy error body when no API version is asked for."""
        response = _get_user(project, make_token(project))
        assert response.status_code == 403
        body = response.json()
        assert body["code"] == 403
        assert body["error_code"] == "bad_jwt"
        assert body["msg"].startswith("invalid JWT: ")
        assert fragment in body["msg"]

    def test_versioned_error_body(self, project: Project) -> None:
        """Clients sending `X-Supabase-Api-Version: 2024-01-01` get `{code, message}` and the header back."""
        response = _get_user(project, "not.a.jwt", **{"X-Supabase-Api-Version": "2024-01-01"})
        assert response.status_code == 403
        assert response.json()["code"] == "bad_jwt"
        assert response.headers["X-Supabase-Api-Version"] == "2024-01-01"

    def test_missing_token_is_401(self, project: Project) -> None:
        """Without a bearer token GoTrue answers 401 `no_authorization`."""
        response = httpx.get(f"{project.url}/auth/v1/user")
        assert response.status_code == 401
        assert response.json()["error_code"] == "no_authorization"
