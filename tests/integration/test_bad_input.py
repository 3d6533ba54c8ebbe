"""Bad input gets a clear JSON 4xx naming the field, never a 5xx (issue 7): one regression test per defect.

Each request goes through the functions as functions-framework serves them (`served_api`), over real
Postgres. Run against the commit before the fixes, 36 of these 45 tests failed: 14 requests answered 500
(NUL bytes in JSON, query, headers and form fields, deep JSON, NaN, `Last-Event-ID: ²`, and the webhook's
non-ASCII Authorization), 3 answered an HTML 404 page (`/robots.txt`, `/favicon.ico` on both functions),
tokens with role `service_role`, `anon` or none were served (200), a user in no workspace got a 404, a reused
Idempotency-Key with another body a 202, a body over the limit a 400, `Last-Event-ID` past bigint or in
Arabic-Indic digits a 200, and 9 refusals did not name the field.
"""

from __future__ import annotations

import io
import re
import time
import uuid
from typing import Any

import functions_framework
import jwt
import pytest
from werkzeug.test import Client

from infra.roster import load_roster
from shared.api.openapi import openapi_document
from shared.settings import get_settings
from shared.webhook_auth import expected_authorization
from tests.integration import served_api
from tests.integration.served_api import REPO, SECRET, Served, token

served = served_api.served
BRIEF = {"title": "Diwali teaser", "objective": "Warm up the list", "channels": ["email"]}


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json", response.get_data(as_text=True)
    error: dict[str, Any] = response.get_json()["error"]
    assert error["code"] and error["message"]
    return error


@pytest.fixture(scope="module")
def member(served: Served) -> dict[str, str]:
    return served.member()


class TestNulBytes:
    """Postgres text cannot hold U+0000: a NUL anywhere was a 500 from the driver; now a 400 naming where."""

    @pytest.mark.parametrize(("method", "path", "body", "field"), [
        ("POST", "/api/v1/campaigns", {"brief": {**BRIEF, "title": "Diwali\u0000"}}, "brief.title"),
        ("POST", "/api/v1/campaigns", {"brief": {**BRIEF, "channels": ["email", "x\u0000"]}}, "brief.channels.1"),
        ("PUT", "/api/v1/brand-kit", {"banned_terms": [{"term": "cheap", "substitution": "af\u0000"}]},
         "banned_terms.0.substitution"),
        ("PUT", "/api/v1/brand-kit", {"required_disclaimers": {"ad\u0000": ["T&C"]}}, "required_disclaimers.ad\\u0000"),
        ("POST", "/api/v1/knowledge", {"kind": "text", "content": "tea\u0000leaf"}, "content"),
        ("POST", "/api/v1/qa/check", {"content_type": "ad", "fields": {"headline": "Hi\u0000"}}, "fields.headline"),
    ])
    def test_in_json_at_any_depth(self, served: Served, member: dict[str, str], method: str, path: str,
                                  body: dict[str, Any], field: str) -> None:
        error = _error(served.client().open(path, method=method, json=body, headers=member), 400)
        assert f"`{field}" in error["message"] and "NUL" in error["message"]

    @pytest.mark.parametrize(("path", "field"), [
        ("/api/v1/campaigns?cursor=%00", "cursor"),
        ("/api/v1/campaigns?status=queued%00", "status"),
        ("/api/v1/knowledge/search?q=tea%00", "q"),
        ("/api/v1/knowledge/%00", "document_id"),
        ("/api/v1/campaigns/%00/events", "campaign_id"),
    ])
    def test_in_query_and_path(self, served: Served, member: dict[str, str], path: str, field: str) -> None:
        error = _error(served.client().get(path, headers=member), 400)
        assert error["details"]["field"] == field

    @pytest.mark.parametrize("header", ["Idempotency-Key", "X-Workspace-Id"])
    def test_in_headers_that_reach_the_database(self, served: Served, member: dict[str, str],
                                                header: str) -> None:
        response = served.client().post("/api/v1/campaigns", json={"brief": BRIEF},
                                        headers={**member, header: "key\u0000"})
        assert _error(response, 400)["details"]["field"] == header

    @pytest.mark.parametrize(("data", "field"), [
        ({"file": (io.BytesIO(b"tea"), "notes.txt"), "title": "Tea\u0000"}, "title"),
        ({"file": (io.BytesIO(b"tea"), "no\u0000tes.txt")}, "file (its file name)"),
    ])
    def test_in_multipart_form_fields(self, served: Served, member: dict[str, str], data: dict[str, Any],
                                      field: str) -> None:
        response = served.client().post("/api/v1/knowledge", data=data, headers=member,
                                        content_type="multipart/form-data")
        assert _error(response, 400)["details"]["field"] == field

    def test_unpaired_surrogate_is_refused_too(self, served: Served, member: dict[str, str]) -> None:
        body = b'{"brief": {"title": "\\ud800", "objective": "x"}}'
        response = served.client().post("/api/v1/campaigns", data=body, headers=member,
                                        content_type="application/json")
        assert "surrogate" in _error(response, 400)["message"]


class TestJsonShape:
    """Deep JSON was a RecursionError 500 on every JSON route; `NaN` reached Postgres' jsonb."""

    @pytest.mark.parametrize(("method", "path"), [("POST", "/api/v1/campaigns"), ("PUT", "/api/v1/brand-kit"),
                                                  ("POST", "/api/v1/qa/check"), ("POST", "/api/v1/knowledge")])
    def test_a_100k_deep_body_is_refused_cheaply(self, served: Served, member: dict[str, str], method: str,
                                                 path: str) -> None:
        body = b"[" * 100_000 + b"]" * 100_000
        started = time.perf_counter()
        response = served.client().open(path, method=method, data=body, content_type="application/json",
                                        headers=member)
        assert time.perf_counter() - started < 1.0
        assert "deeper than" in _error(response, 400)["message"]

    def test_the_limit_is_the_setting(self, served: Served, member: dict[str, str]) -> None:
        limit = get_settings().json_max_depth
        nested: Any = "deep"
        for _ in range(limit):
            nested = [nested]
        brief = {**BRIEF, "notes": "n"}
        just_right = served.client().post("/api/v1/campaigns", json={"brief": brief, "x": nested[0]}, headers=member)
        assert "deeper than" not in just_right.get_data(as_text=True)
        too_deep = served.client().post("/api/v1/campaigns", json={"brief": brief, "x": [nested]}, headers=member)
        assert f"deeper than {limit}" in _error(too_deep, 400)["message"]

    def test_nan_is_not_a_number(self, served: Served, member: dict[str, str]) -> None:
        body = b'{"brief": {"title": "t", "objective": "o", "budget_inr": NaN}}'
        response = served.client().post("/api/v1/campaigns", data=body, headers=member,
                                        content_type="application/json")
        assert "NaN" in _error(response, 400)["message"]


class TestEveryErrorIsJson:
    """werkzeug's own errors were HTML pages: routing, body limits, malformed multipart, and the webhook's."""

    @pytest.mark.parametrize(("method", "path", "status"), [
        ("GET", "/robots.txt", 404), ("GET", "/favicon.ico", 404), ("GET", "/api/v1/nothing-here", 404),
        ("DELETE", "/api/v1/campaigns", 405), ("TRACE", "/api/v1/brand-kit", 405),
        ("GET", "/webhooks/phonepe", 405), ("GET", "/webhooks/phonepe/robots.txt", 404),
    ])
    def test_routing_errors(self, served: Served, method: str, path: str, status: int) -> None:
        response = served.client().open(path, method=method)
        _error(response, status)
        if status == 405:
            assert response.headers["Allow"]

    @pytest.mark.parametrize("name", list(load_roster()))
    def test_every_function_answers_its_own_404_in_json(self, name: str) -> None:
        app = functions_framework.create_app(name, str(REPO / "functions" / name / "main.py"))
        _error(Client(app).get("/favicon.ico"), 404)

    def test_a_body_over_the_limit_is_a_json_413(self, served: Served, member: dict[str, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(get_settings(), "api_max_body_bytes", 2048)
        body = {"brief": {**BRIEF, "notes": "x" * 4096}}
        error = _error(served.client().post("/api/v1/campaigns", json=body, headers=member), 413)
        assert "2048" in error["message"] and "MUSE_API_MAX_BODY_BYTES" in error["message"]

    def test_a_truncated_multipart_body_is_a_json_400(self, served: Served, member: dict[str, str]) -> None:
        body = b'--b\r\nContent-Disposition: form-data; name="title"\r\n\r\ntea'
        response = served.client().post("/api/v1/knowledge", data=body, headers=member,
                                        content_type="multipart/form-data; boundary=b")
        _error(response, 400)

    @pytest.mark.parametrize(("headers", "body", "status"), [
        ({"Authorization": "sha256 caf\u00e9"}, b"{}", 401),
        ({"Authorization": expected_authorization("u", "p")}, b"[" * 50_000 + b"]" * 50_000, 400),
        ({"Authorization": expected_authorization("u", "p")}, b"\xff\xfe not json", 400),
    ])
    def test_webhook_errors(self, served: Served, headers: dict[str, str], body: bytes, status: int) -> None:
        response = served.client().post("/webhooks/phonepe", data=body, headers=headers,
                                        content_type="application/json")
        _error(response, status)


@pytest.fixture(scope="module")
def campaign(served: Served, member: dict[str, str]) -> str:
    response = served.client().post("/api/v1/campaigns", json={"brief": BRIEF}, headers=member)
    assert response.status_code == 202
    return str(response.get_json()["id"])


class TestUndocumentedQuery:
    """A query parameter an operation does not document was silently ignored (a misspelt filter listed all)."""

    @pytest.mark.parametrize("path", ["/api/v1/campaigns?colour=red", "/api/v1/brand-kit?x=1",
                                      "/api/v1/audit?actions=x", "/v1/knowledge/search?q=tea&limit=3"])
    def test_is_a_400_naming_it(self, served: Served, member: dict[str, str], path: str) -> None:
        error = _error(served.client().get(path, headers=member), 400)
        assert error["details"]["field"] in path and "documented" in error["message"]


class TestLastEventId:
    """`²`.isdigit() is true but int('²') raises: the resume position was a 500; ids are bigint."""

    @pytest.mark.parametrize(("headers", "query", "name"), [
        ({"Last-Event-ID": "\u00b2"}, "", "Last-Event-ID"),
        ({"Last-Event-ID": "-1"}, "", "Last-Event-ID"),
        ({"Last-Event-ID": "9223372036854775808"}, "", "Last-Event-ID"),
        ({}, "?last_event_id=%D9%A1", "last_event_id"),
        ({}, "?last_event_id=1e3", "last_event_id"),
    ])
    def test_only_ascii_digits_within_bigint(self, served: Served, member: dict[str, str], campaign: str,
                                             headers: dict[str, str], query: str, name: str) -> None:
        response = served.client().get(f"/api/v1/campaigns/{campaign}/events{query}", headers={**member, **headers})
        error = _error(response, 400)
        assert error["details"]["field"] == name and f"`{name}`" in error["message"]

    def test_a_valid_id_streams(self, served: Served, member: dict[str, str], campaign: str) -> None:
        response = served.client().get(f"/api/v1/campaigns/{campaign}/events",
                                       headers={**member, "Last-Event-ID": "9223372036854775807"})
        assert response.status_code == 200 and response.mimetype == "text/event-stream"
        assert "event:" not in response.get_data(as_text=True)
        response = served.client().get(f"/api/v1/campaigns/{campaign}/events?last_event_id=0", headers=member)
        assert "event: campaign.created" in response.get_data(as_text=True)


class TestIfMatch:
    """`If-Match: ²` passed `str.isdigit()` and `int()` raised: a 500 on every brand-kit PUT carrying one."""

    @pytest.mark.parametrize("value", ["\u00b2", '"\u0661"', "1" * 40])
    def test_only_ascii_digits(self, served: Served, member: dict[str, str], value: str) -> None:
        response = served.client().put("/api/v1/brand-kit", json={}, headers={**member, "If-Match": value})
        assert _error(response, 400)["details"]["field"] == "If-Match"


class TestPrincipal:
    """A verified token is a caller only if it is a user's (`role` authenticated) whom Muse knows."""

    def test_a_user_that_does_not_exist_is_401_not_404(self, served: Served) -> None:
        ghost = token(str(uuid.uuid4()), str(uuid.uuid4()))
        for path in ("/api/v1/campaigns", "/api/v1/brand-kit", "/api/v1/knowledge/search?q=tea",
                     "/api/v1/workspace/privacy", "/api/v1/audit", "/api/v1/workspace/export"):
            error = _error(served.client().get(path, headers={"Authorization": f"Bearer {ghost}"}), 401)
            assert "no workspace" in error["message"]

    @pytest.mark.parametrize("metadata", ["x", ["ws"], {"workspace_id": 5}, {"workspace_id": "ws\u0000"}])
    def test_malformed_app_metadata_is_401(self, served: Served, metadata: Any) -> None:
        headers = served.member(claims={"app_metadata": metadata})
        for path in ("/api/v1/campaigns", "/api/v1/brand-kit", "/api/v1/audit"):
            assert "`app_metadata`" in _error(served.client().get(path, headers=headers), 401)["message"] or (
                "NUL" in _error(served.client().get(path, headers=headers), 401)["message"])

    @pytest.mark.parametrize("role", ["service_role", "anon", None])
    def test_a_role_other_than_authenticated_is_401(self, served: Served, role: str | None) -> None:
        headers = served.member(claims={"role": role or None})
        if role is None:
            headers = served.member(claims={"role": None})
        error = _error(served.client().get("/api/v1/campaigns", headers=headers), 401)
        assert "`role`" in error["message"]


class TestIdempotencyKey:
    """Reusing a key with another body silently answered the first campaign; now 422, as payment APIs do."""

    def test_same_body_replays_and_a_different_body_is_422(self, served: Served) -> None:
        headers = {**served.member(), "Idempotency-Key": f"k-{uuid.uuid4().hex}"}
        client = served.client()
        first = client.post("/api/v1/campaigns", json={"brief": BRIEF}, headers=headers)
        reordered = {"kind": "campaign", "brief": dict(reversed(list(BRIEF.items())))}
        again = client.post("/api/v1/campaigns", json=reordered, headers=headers)
        assert first.status_code == again.status_code == 202
        assert again.get_json()["id"] == first.get_json()["id"]
        other = client.post("/api/v1/campaigns", json={"brief": {**BRIEF, "title": "Holi teaser"}}, headers=headers)
        error = _error(other, 422)
        assert error["details"] == {"field": "Idempotency-Key", "campaign_id": first.get_json()["id"]}


MALFORMED_BODIES = [b"", b"null", b"[]", b'"x"', b"1", b"[" * 5000 + b"]" * 5000, b"\xff\xfe\xfa", b'{"a": "\\u0000"}',
                    b'{"a": 1e999}', b'{"a": ' + b"9" * 5000 + b"}", b'{"content": "\\ud800"}', b"{'a': 1}",
                    b"\xef\xbb\xbf{}"]
MEDIA_TYPES = ["application/json", "text/plain", "application/json; charset=utf-16", "multipart/form-data",
               "multipart/form-data; boundary=zz", "application/x-www-form-urlencoded"]
MALFORMED_QUERIES = ["?x=%00", "?limit=%C2%B2", "?k=%C2%B2", "?cursor=%FF%FE", "?last_event_id=%C2%B2", "?q=%00",
                     "?q=" + "a" * 5000, "?until=%C2%B2", "?limit=99999999999999999999999", "?=1", "?tags=%00"]
MALFORMED_HEADERS = [{"X-Workspace-Id": "zz"}, {"X-Workspace-Id": "\u00e9"}, {"Idempotency-Key": "x" * 300},
                     {"If-Match": "\u00b2"}, {"Last-Event-ID": "\u00b2"}]


def test_no_malformed_request_to_any_documented_operation_is_a_5xx(served: Served, member: dict[str, str]) -> None:
    """The probe's sweep, over every operation of the document (routes added later included): malformed
    bodies under every media type, query strings, headers and tokens; every answer is a JSON 4xx or a success."""
    claims = jwt.decode(member["Authorization"][7:], options={"verify_signature": False})
    tokens = [f"Bearer {jwt.encode(variant, SECRET, algorithm='HS256')}" for variant in (
        {**claims, "sub": "not-a-uuid"}, {**claims, "sub": 5}, {**claims, "aud": "other"}, {**claims, "exp": "soon"},
        {**claims, "app_metadata": "x"}, {**claims, "app_metadata": {"workspace_id": "\u0000"}})]
    tokens += ["Bearer x.y.z", "Bearer e30.e30.", "Basic abc", "Bearer \u00e9"]
    webhook = {"Authorization": expected_authorization("u", "p")}
    requests: list[tuple[str, str, dict[str, Any]]] = []
    for path, item in openapi_document()["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        for method in (m.upper() for m in item):
            headers = webhook if path.startswith("/webhooks/") else member
            requests += [(method, concrete, {"data": body, "headers": {**headers, "Content-Type": media_type}})
                         for body in MALFORMED_BODIES for media_type in MEDIA_TYPES]
            requests += [(method, concrete + query, {"headers": headers}) for query in MALFORMED_QUERIES]
            requests += [(method, concrete, {"headers": {**headers, **extra}, "json": {}})
                         for extra in MALFORMED_HEADERS]
            requests += [(method, concrete, {"headers": {"Authorization": value}, "json": {}}) for value in tokens]
    client = served.client()
    wrong = []
    for method, path, kwargs in requests:
        response = client.open(path, method=method, **kwargs)
        if response.status_code >= 500 or (response.status_code >= 400 and response.mimetype != "application/json"):
            wrong.append(f"{response.status_code} {response.mimetype} {method} {path} {str(kwargs)[:120]}")
        response.close()
    assert len(requests) > 1000 and not wrong, wrong[:20]