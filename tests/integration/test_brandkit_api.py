"""`/api/v1/brand-kit` and `/api/v1/qa/check` in-process: Flask test client, real Postgres under RLS, HS256 tokens."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import flask
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from infra.local.token import mint
from shared.api import app as api_app
from shared.api import brandkit
from shared.brandkit import KitView
from shared.db import brandkits as db
from shared.db.pool import as_user, connect
from shared.db.workspaces import PostgresWorkspaceStore, ensure_workspace
from shared.settings import get_settings
from shared.testing.qa_fakes import GuidelineJudge
from tests.integration.harness import TEST_ENV

SECRET = "brand-kit-test-secret-at-least-32-bytes-long"
KIT: dict[str, Any] = {
    "voice": ["warm"],
    "banned_terms": [{"term": "cheap", "substitution": "affordable"}],
    "required_disclaimers": {"ad": ["T&C apply"]},
    "products": [{"name": "Festive Gift Box", "facts": ["Costs INR 1499"]}],
    "languages": ["en", "hi"],
}


@dataclass
class Member:
    """A workspace member and the headers of their requests."""

    workspace_id: str
    user_id: str
    headers: dict[str, str]


@pytest.fixture
def judge() -> GuidelineJudge:
    return GuidelineJudge()


@pytest.fixture
def client(pool: ConnectionPool, migrated_dsn: str, judge: GuidelineJudge,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[flask.testing.FlaskClient]:
    for name, value in {**TEST_ENV, "DATABASE_URL": migrated_dsn, "SUPABASE_JWT_SECRET": SECRET}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    api_app.api.cache_clear()
    brandkit.service.cache_clear()
    service = brandkit.BrandKitApi(pool=pool, model_factory=lambda: judge)
    monkeypatch.setattr(brandkit, "service", lambda: service)
    server = flask.Flask(__name__)
    server.add_url_rule("/<path:path>", "api", lambda path: api_app.dispatch(flask.request),
                        methods=["GET", "PUT", "POST", "DELETE"])
    try:
        yield server.test_client()
    finally:
        get_settings.cache_clear()
        api_app.api.cache_clear()


def _member(dsn: str, settings: dict[str, Any] | None = None) -> Member:
    slug = f"bk-{uuid.uuid4().hex[:10]}"
    user_id = str(uuid.uuid4())
    with connect(dsn) as conn, conn.transaction():
        workspace_id = ensure_workspace(conn, slug=slug, name=slug, user_id=user_id, settings=settings)
    token = mint(SECRET, user_id=user_id, workspace_id=workspace_id, slug=slug, issuer="http://127.0.0.1/auth/v1")
    return Member(workspace_id=workspace_id, user_id=user_id, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def member(migrated_dsn: str) -> Member:
    return _member(migrated_dsn)


class TestBrandKit:
    def test_no_kit_yet_is_an_empty_kit_at_version_0(self, client, member: Member) -> None:
        response = client.get("/api/v1/brand-kit", headers=member.headers)
        assert response.status_code == 200 and response.headers["ETag"] == '"0"'
        body = response.get_json()
        assert body["version"] == 0 and body["updated_at"] is None and body["workspace_id"] == member.workspace_id
        assert body["kit"]["banned_terms"] == [] and body["kit"]["languages"] == []

    def test_put_stores_and_bumps_the_version(self, client, member: Member, pool: ConnectionPool) -> None:
        first = client.put("/api/v1/brand-kit", json=KIT, headers=member.headers)
        assert first.status_code == 200 and first.get_json()["version"] == 1
        changed = {**KIT, "voice": ["warm", "plain-spoken"]}
        second = client.put("/api/v1/brand-kit", json=changed, headers=member.headers)
        assert second.get_json()["version"] == 2 and second.headers["ETag"] == '"2"'
        body = client.get("/v1/brand-kit", headers=member.headers).get_json()
        assert body["version"] == 2 and body["kit"]["voice"] == ["warm", "plain-spoken"]
        assert body["kit"]["banned_terms"] == [{"term": "cheap", "substitution": "affordable",
                                                "case_sensitive": False, "reason": None, "language": None}]
        stored = PostgresWorkspaceStore(pool).brand_kit(member.workspace_id)
        assert isinstance(stored, KitView) and stored.banned_terms == {"cheap": "affordable"}
        assert stored.spec is not None and stored.spec.products[0].name == "Festive Gift Box"

    @pytest.mark.parametrize(("kit", "field", "words"), [
        ({"voice": ["warm"], "colour": "blue"}, "colour", "Extra inputs are not permitted"),
        ({"languages": ["xx"]}, "languages.0", "Input should be"),
        ({"banned_terms": {"cheap": "affordable"}, "approved_terms": [{"term": "Cheap"}]}, "banned_terms",
         "'cheap' is both banned and approved"),
    ])
    def test_invalid_kit_is_a_400_naming_the_field(self, client, member: Member, kit: dict[str, Any], field: str,
                                                   words: str) -> None:
        response = client.put("/api/v1/brand-kit", json=kit, headers=member.headers)
        assert response.status_code == 400
        error = response.get_json()["error"]
        assert error["code"] == "invalid_request" and f"`{field}`" in error["message"] and words in error["message"]
        assert [p["field"] for p in error["details"]["fields"]] == [field]
        assert client.get("/api/v1/brand-kit", headers=member.headers).get_json()["version"] == 0

    def test_if_match_refuses_a_stale_write(self, client, member: Member) -> None:
        client.put("/api/v1/brand-kit", json=KIT, headers=member.headers)
        stale = client.put("/api/v1/brand-kit", json=KIT, headers={**member.headers, "If-Match": '"0"'})
        assert stale.status_code == 409 and "version 1, not 0" in stale.get_json()["error"]["message"]
        fresh = client.put("/api/v1/brand-kit", json=KIT, headers={**member.headers, "If-Match": '"1"'})
        assert fresh.status_code == 200 and fresh.get_json()["version"] == 2
        bad = client.put("/api/v1/brand-kit", json=KIT, headers={**member.headers, "If-Match": "latest"})
        assert bad.status_code == 400 and "If-Match" in bad.get_json()["error"]["message"]

    def test_row_level_security_keeps_kits_apart(self, client, member: Member, migrated_dsn: str) -> None:
        client.put("/api/v1/brand-kit", json=KIT, headers=member.headers)
        other = _member(migrated_dsn)
        assert client.get("/api/v1/brand-kit", headers=other.headers).get_json()["version"] == 0
        foreign = {**other.headers, "X-Workspace-Id": member.workspace_id}
        assert client.get("/api/v1/brand-kit", headers=foreign).status_code == 404
        assert client.put("/api/v1/brand-kit", json={"voice": ["hijacked"]}, headers=foreign).status_code == 404
        assert client.get("/api/v1/brand-kit", headers=member.headers).get_json()["kit"]["voice"] == ["warm"]

    def test_rls_itself_scopes_the_statements(self, client, member: Member, migrated_dsn: str,
                                              pool: ConnectionPool) -> None:
        """Below the membership check: as another user, the kit is invisible and cannot be written."""
        client.put("/api/v1/brand-kit", json=KIT, headers=member.headers)
        other = _member(migrated_dsn)
        claims = {"sub": other.user_id, "role": "authenticated", "aud": "authenticated"}
        with as_user(pool, claims) as conn:
            assert db.get_kit(conn, member.workspace_id) is None
        with pytest.raises(psycopg.errors.InsufficientPrivilege), as_user(pool, claims) as conn:
            db.save_kit(conn, member.workspace_id, {"voice": ["hijacked"]})
        with as_user(pool, {"sub": member.user_id, "role": "authenticated"}) as conn:
            assert db.get_kit(conn, member.workspace_id)["kit"]["voice"] == ["warm"]

    def test_needs_a_token_and_a_known_method(self, client) -> None:
        assert client.get("/api/v1/brand-kit").status_code == 401
        response = client.delete("/api/v1/brand-kit", headers={"Authorization": "Bearer x"})
        assert response.status_code == 405 and response.headers["Allow"] == "GET, PUT"


class TestQACheck:
    AD = {"headline": "Cheap Diwali tea gifts", "description": "Four teas from Assam in one box."}

    def test_scores_per_field_with_reasons_against_the_workspace_kit(self, client, member: Member,
                                                                     judge: GuidelineJudge) -> None:
        client.put("/api/v1/brand-kit", json=KIT, headers=member.headers)
        judge.script("voice:warm", [{"item": "ad", "field": "headline", "evidence": "Cheap",
                                     "fix": "Sound like a friend giving a gift."}])
        response = client.post("/api/v1/qa/check", json={"content_type": "ad", "fields": self.AD, "language": "en"},
                               headers=member.headers)
        assert response.status_code == 200
        body = response.get_json()
        assert body["kit_version"] == 1 and not body["passed"] and body["blocking"] == 2
        assert 0 < body["score"] < 1 and body["score"] == round(body["met"] / body["tested"], 4)
        headline = {f["guideline"]: f for f in body["fields"]["headline"]["findings"]}
        assert headline["banned_terms"]["suggestion"] == "affordable"
        assert headline["voice:warm"]["layer"] == "judge" and not headline["voice:warm"]["blocking"]
        [disclaimer] = body["fields"]["description"]["findings"]
        assert disclaimer["guideline"] == "required_disclaimers" and "T&C apply" in disclaimer["message"]
        assert judge.guidelines_asked == sorted(["voice:warm", "aspect:clarity", "aspect:persuasiveness",
                                                 "aspect:brand_alignment", "aspect:audience_fit",
                                                 "aspect:call_to_action"])
        assert len(body["usage"]) == 6

    def test_clean_copy_passes_and_the_judge_can_be_skipped(self, client, member: Member,
                                                            judge: GuidelineJudge) -> None:
        client.put("/api/v1/brand-kit", json=KIT, headers=member.headers)
        fields = {"headline": "Affordable Diwali tea gifts", "description": "Festive Gift Box for ₹1,499. T&C apply"}
        body = client.post("/api/v1/qa/check", json={"content_type": "ad", "fields": fields, "judge": False},
                           headers=member.headers).get_json()
        assert body["passed"] and body["score"] == 1.0 and judge.calls == []
        assert {g["layer"] for g in body["guidelines"]} == {"lint", "claims"}

    def test_hindi_copy_and_sources(self, client, member: Member) -> None:
        client.put("/api/v1/brand-kit", json=KIT, headers=member.headers)
        fields = {"headline": "दिवाली का तोहफ़ा", "description": "34% ज़्यादा लोग चाय तोहफ़े में देते हैं। T&C apply"}
        request = {"content_type": "ad", "fields": fields, "language": "hi", "judge": False}
        unsupported = client.post("/api/v1/qa/check", json=request, headers=member.headers).get_json()
        assert [f["guideline"] for f in unsupported["fields"]["description"]["findings"]] == ["numbers"]
        sourced = client.post("/api/v1/qa/check", json={**request, "sources": ["Tea gifting rose 34 percent."]},
                              headers=member.headers).get_json()
        assert sourced["passed"]

    def test_workspace_settings_choose_the_critique_aspects(self, client, migrated_dsn: str,
                                                            judge: GuidelineJudge) -> None:
        member = _member(migrated_dsn, {"self_correction": {"critique_aspects": ["clarity"],
                                                            "min_quality_score": 0.5}})
        response = client.post("/api/v1/qa/check", json={"content_type": "ad", "fields": self.AD},
                               headers=member.headers)
        assert response.get_json()["kit_version"] == 0 and judge.guidelines_asked == ["aspect:clarity"]

    @pytest.mark.parametrize(("request_body", "field", "words"), [
        ({"content_type": "ad", "fields": {"headline": "x", "description": "y", "tagline": "z"}}, "fields",
         "'tagline' is not a field of ad"),
        ({"content_type": "ad", "fields": {"headline": "x"}}, "fields", "ad copy needs ['description']"),
        ({"content_type": "x_thread", "fields": {"posts": "one post"}}, "fields", "is a list of texts"),
        ({"content_type": "tiktok", "fields": {"text": "x"}}, "content_type", "Input should be"),
        ({"content_type": "ad", "fields": {"headline": "x", "description": "y"}, "language": "fr"}, "language",
         "Input should be"),
        ({"content_type": "ad", "fields": {}}, "fields", "at least 1 item"),
    ])
    def test_bad_input_is_a_400_naming_the_field(self, client, member: Member, request_body: dict[str, Any],
                                                 field: str, words: str) -> None:
        response = client.post("/api/v1/qa/check", json=request_body, headers=member.headers)
        assert response.status_code == 400
        error = response.get_json()["error"]
        assert error["details"]["fields"][0]["field"] == field and words in error["message"]
