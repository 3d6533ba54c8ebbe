"""Personal data masked by the workspace's policy wherever it would be stored or leave the process.

Real Postgres under row-level security, the e5 model and the Storage/Tavily emulators for knowledge,
the LangSmith emulator fed by the real SDK for traces, and a real function process for logs.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask
import httpx
import langsmith
import pytest
from psycopg_pool import ConnectionPool

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.langsmith import create_app as create_langsmith
from infra.local.serve import RunningServer, serve_in_thread
from infra.local.token import mint
from shared.api import app as api_app
from shared.api import privacy
from shared.auth import Principal
from shared.db import audit
from shared.db import privacy as privacy_db
from shared.db.pool import as_service, connect
from shared.db.workspaces import ensure_workspace
from shared.memory.models import FactSource
from shared.memory.pg import PgSemanticMemory, build_memory
from shared.runtime.wiring import langsmith_client
from shared.safety.pii import PiiPolicy, find_pii, verhoeff_check_digit
from shared.settings import get_settings
from tests.integration.harness import TEST_ENV, Harness, make_settings
from tests.integration.knowledge_world import E5, World, build_world, knowledge_emulators, open_pool
from tests.pdfgen import make_pdf

SECRET = "privacy-test-secret-at-least-32-bytes-long"
AADHAAR = "98765432101" + verhoeff_check_digit("98765432101")
SPACED_AADHAAR = f"{AADHAAR[:4]} {AADHAAR[4:8]} {AADHAAR[8:]}"
CUSTOMER = (f"Customer escalation: Meera Iyer (Aadhaar {SPACED_AADHAAR}, PAN ABCPI1234K) called from "
            "+91 98450 12345 about order #9876543210. Refund to meera.iyer@gmail.com or UPI meera@oksbi; "
            "her card 4111 1111 1111 1111 was charged twice for the Banarasi silk saree at ₹1,499.")
RAW = (SPACED_AADHAAR, "ABCPI1234K", "98450 12345", "meera.iyer@gmail.com", "meera@oksbi", "4111 1111 1111 1111")


def _leaks(text: str) -> list[str]:
    return [value for value in RAW if value in text]


@pytest.fixture(scope="module")
def servers(migrated_dsn: str) -> Iterator[dict[str, RunningServer]]:
    with knowledge_emulators(migrated_dsn) as running:
        yield running


@pytest.fixture(scope="module")
def module_pool(migrated_dsn: str) -> Iterator[ConnectionPool]:
    with open_pool(migrated_dsn, max_size=4) as pool:
        yield pool


@pytest.fixture
def world(migrated_dsn: str, module_pool: ConnectionPool, servers: dict[str, RunningServer]) -> Iterator[World]:
    built = build_world(migrated_dsn, module_pool, servers)
    yield built
    built.service.store.client.session.close()  # type: ignore[attr-defined]


def _set_policy(pool: ConnectionPool, principal: Principal, policy: PiiPolicy) -> None:
    with as_service(pool) as conn:
        privacy_db.save_privacy(conn, str(principal.requested_workspace), policy, updated_by=principal.user_id)


# ------------------------------------------------------------------------------------------- knowledge


class TestKnowledge:
    def test_stored_text_chunks_search_results_and_the_fetched_resource_are_redacted_by_default(
            self, world: World) -> None:
        owner = world.principal()
        document_id = world.add(owner, CUSTOMER, title="Escalation log")
        view = world.service.get(owner, document_id)
        assert view.status == "ready" and view.content is not None
        assert _leaks(view.content) == []
        assert "[AADHAAR]" in view.content and "[UPI]" in view.content and "[CARD]" in view.content
        assert "order #9876543210" in view.content and "₹1,499" in view.content, "non-personal numbers are kept"
        for q in ("Meera refund UPI card charged twice", "meera.iyer@gmail.com", "98450 12345"):
            for mode in ("hybrid", "text"):
                results = world.search(owner, q, mode=mode)
                assert all(_leaks(r.content) == [] for r in results)
        assert world.search(owner, "Banarasi silk saree refund")[0].content.count("[EMAIL]") == 1
        with connect(world.dsn) as conn:
            stored = conn.execute("SELECT d.content, array_agg(c.content) AS chunks FROM public.knowledge_documents d "
                                  "JOIN public.knowledge_chunks c ON c.document_id = d.id WHERE d.id = %s "
                                  "GROUP BY d.content", (document_id,)).fetchone()
        assert _leaks(stored["content"]) == [] and _leaks(" ".join(stored["chunks"])) == []

    def test_the_workspace_policy_picks_mask_or_allow_per_kind(self, world: World) -> None:
        owner = world.principal()
        _set_policy(world.pool, owner, PiiPolicy(mode="mask", overrides={"email": "allow", "pan": "redact"}))
        content = world.service.get(owner, world.add(owner, CUSTOMER)).content or ""
        assert f"XXXX XXXX {AADHAAR[8:]}" in content and "+XX XXXXX X2345" in content
        assert "XXXX XXXX XXXX 1111" in content and "m***@oksbi" in content and "[PAN]" in content
        assert "meera.iyer@gmail.com" in content
        other = world.principal()
        assert _leaks(world.service.get(other, world.add(other, CUSTOMER)).content or "") == [], \
            "one workspace's policy never applies to another"

    def test_a_title_with_personal_data_is_masked_and_pdf_pages_still_line_up(self, world: World) -> None:
        """Masking page 1 shortens it by more than a chunk's stride, so unmoved page starts would mislabel page 2."""
        owner = world.principal()
        pages = ["\n".join(f"Lead {i}: write to meera.iyer.customer.care{i}@gmail.com today." for i in range(30)),
                 "\n".join(f"Darjeeling note {i}: first flush is light, floral and muscatel; brew at 85 degrees."
                           for i in range(24))]
        pdf = make_pdf(pages, title="Notes for meera.iyer@gmail.com")
        accepted = world.service.submit_file(owner, filename="notes.pdf", data=pdf, content_type="application/pdf",
                                             kind=None, title=None, tags=[], workspace=None)
        world.pump()
        view = world.service.get(owner, accepted.id)
        assert view.status == "ready" and view.title == "Notes for [EMAIL]"
        content = view.content or ""
        assert "@gmail.com" not in content and content.count("[EMAIL]") == 30
        page_two = content.index("Darjeeling note 0")
        with connect(world.dsn) as conn:
            chunks = conn.execute("SELECT char_start, page FROM public.knowledge_chunks WHERE document_id = %s "
                                  "ORDER BY position", (accepted.id,)).fetchall()
        assert len(chunks) >= 3 and any(c["char_start"] > page_two for c in chunks)
        assert [c["page"] for c in chunks] == [1 if c["char_start"] < page_two else 2 for c in chunks]


# ------------------------------------------------------------------------------------------- policy route


@pytest.fixture
def client(pool: ConnectionPool, migrated_dsn: str,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[flask.testing.FlaskClient]:
    for name, value in {**TEST_ENV, "DATABASE_URL": migrated_dsn, "SUPABASE_JWT_SECRET": SECRET}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    api_app.api.cache_clear()
    service = privacy.PrivacyApi(pool=pool)
    monkeypatch.setattr(privacy, "service", lambda: service)
    server = flask.Flask(__name__)
    server.add_url_rule("/<path:path>", "api", lambda path: api_app.dispatch(flask.request), methods=["GET", "PUT"])
    try:
        yield server.test_client()
    finally:
        get_settings.cache_clear()
        api_app.api.cache_clear()


def _member(dsn: str) -> tuple[str, str, dict[str, str]]:
    slug = f"pv-{uuid.uuid4().hex[:10]}"
    user_id = str(uuid.uuid4())
    with connect(dsn) as conn, conn.transaction():
        workspace_id = ensure_workspace(conn, slug=slug, name=slug, user_id=user_id)
    token = mint(SECRET, user_id=user_id, workspace_id=workspace_id, slug=slug, issuer="http://127.0.0.1/auth/v1")
    return workspace_id, user_id, {"Authorization": f"Bearer {token}"}


class TestPolicyRoute:
    def test_default_is_redact_then_a_member_changes_it(self, client: Any, migrated_dsn: str) -> None:
        workspace_id, user_id, headers = _member(migrated_dsn)
        first = client.get("/api/v1/workspace/privacy", headers=headers)
        assert first.status_code == 200 and first.headers["ETag"] == '"0"'
        body = first.get_json()
        assert body["mode"] == "redact" and body["version"] == 0 and body["workspace_id"] == workspace_id
        assert set(body["effective"].values()) == {"redact"} and len(body["effective"]) == 6
        put = client.put("/api/v1/workspace/privacy", headers=headers,
                         json={"mode": "mask", "overrides": {"email": "allow"}})
        assert put.status_code == 200
        changed = put.get_json()
        assert changed["version"] == 1 and changed["updated_by"] == user_id
        assert changed["effective"]["email"] == "allow" and changed["effective"]["aadhaar"] == "mask"
        again = client.put("/api/v1/workspace/privacy", headers=headers,
                           json={"mode": "mask", "overrides": {"email": "allow"}})
        assert again.get_json()["version"] == 1, "the same policy again writes nothing"
        assert client.get("/v1/workspace/privacy", headers=headers).get_json()["overrides"] == {"email": "allow"}
        with connect(migrated_dsn) as conn:
            assert privacy_db.policy_of(conn, workspace_id) == PiiPolicy(mode="mask", overrides={"email": "allow"})
            [entry] = audit.list_entries(conn, workspace_id, actions=["privacy_policy.updated"])
        assert entry["actor"] == user_id and entry["target_id"] == workspace_id
        assert entry["details"] == {"version": 1, "before": {"mode": "redact", "overrides": {}},
                                    "after": {"mode": "mask", "overrides": {"email": "allow"}}}

    @pytest.mark.parametrize(("body", "field"), [
        ({"mode": "hide"}, "mode"), ({}, "mode"), ({"mode": "mask", "overrides": {"voter_id": "mask"}}, "voter_id"),
        ({"mode": "mask", "overrides": {"email": "show"}}, "overrides.email"),
        ({"mode": "mask", "extra": 1}, "extra"), ({"mode": "mask", "overrides": ["email"]}, "overrides"),
    ])
    def test_invalid_input_is_a_400_naming_the_field_and_changes_nothing(
            self, client: Any, migrated_dsn: str, body: dict[str, Any], field: str) -> None:
        _, _, headers = _member(migrated_dsn)
        response = client.put("/api/v1/workspace/privacy", headers=headers, json=body)
        assert response.status_code == 400
        assert field in response.get_json()["error"]["message"]
        assert client.get("/api/v1/workspace/privacy", headers=headers).get_json()["version"] == 0

    def test_only_members_read_or_change_a_workspace_policy(self, client: Any, migrated_dsn: str) -> None:
        workspace_id, _, _ = _member(migrated_dsn)
        _, _, stranger = _member(migrated_dsn)
        other = {**stranger, "X-Workspace-Id": workspace_id}
        assert client.get("/api/v1/workspace/privacy", headers=other).status_code == 404
        assert client.put("/api/v1/workspace/privacy", headers=other, json={"mode": "allow"}).status_code == 404
        assert client.get("/api/v1/workspace/privacy").status_code == 401
        with connect(migrated_dsn) as conn:
            assert privacy_db.get_privacy(conn, workspace_id)["version"] == 0
            assert audit.list_entries(conn, workspace_id) == []

    def test_row_level_security_hides_other_workspaces_policies(self, pool: ConnectionPool,
                                                               migrated_dsn: str) -> None:
        mine, me, _ = _member(migrated_dsn)
        theirs, them, _ = _member(migrated_dsn)
        with connect(migrated_dsn) as conn, conn.transaction():
            privacy_db.save_privacy(conn, theirs, PiiPolicy(mode="allow"), updated_by=uuid.UUID(them))
        from shared.db.pool import as_user

        claims = {"sub": me, "role": "authenticated", "aud": "authenticated"}
        with as_user(pool, claims) as conn:
            assert privacy_db.get_privacy(conn, theirs)["version"] == 0
            with pytest.raises(Exception, match="row-level security"):
                privacy_db.save_privacy(conn, theirs, PiiPolicy(mode="redact"), updated_by=uuid.UUID(me))
        with as_user(pool, claims) as conn:
            assert privacy_db.save_privacy(conn, mine, PiiPolicy(mode="mask"), updated_by=uuid.UUID(me))["version"] == 1


# ------------------------------------------------------------------------------------------- memory


def test_memory_facts_are_masked_by_the_workspace_policy_before_they_are_embedded_or_stored(
        pool: ConnectionPool, migrated_dsn: str) -> None:
    memory = PgSemanticMemory(pool, E5)
    default_ws, masked_ws = _member(migrated_dsn)[0], _member(migrated_dsn)[0]
    with as_service(pool) as conn:
        privacy_db.save_privacy(conn, masked_ws, PiiPolicy(mode="mask"), updated_by=uuid.uuid4())
    fact = "VIP customer Meera Iyer (meera.iyer@gmail.com, +91 98450 12345) prefers Banarasi silk in maroon"
    source = FactSource(kind="manual")
    [learnt] = memory.learn(default_ws, [fact], source)
    assert learnt.fact == "VIP customer Meera Iyer ([EMAIL], [PHONE]) prefers Banarasi silk in maroon"
    with as_service(pool) as conn:
        [in_transaction] = memory.learn_in(conn, masked_ws, [fact], source)
    assert "m***@gmail.com" in in_transaction.fact and "X2345" in in_transaction.fact
    with connect(migrated_dsn) as conn:
        stored = [r["fact"] for r in conn.execute("SELECT fact FROM public.memory_facts WHERE workspace_id IN (%s, %s)",
                                                  (default_ws, masked_ws))]
    assert len(stored) == 2 and all(find_pii(text) == [] for text in stored)
    assert memory.recall(default_ws, "Meera's favourite saree colour")[0].fact == learnt.fact


def test_memory_episodes_and_task_history_are_masked_too(pool: ConnectionPool, migrated_dsn: str) -> None:
    memory = build_memory(pool, E5)
    workspace_id = _member(migrated_dsn)[0]
    episode_id = memory.episodic.record(workspace_id, "interaction", f"User: my UPI is meera@oksbi. {CUSTOMER}",
                                        key="chat-1")
    with as_service(pool) as conn:
        memory.episodic.record_in(conn, workspace_id, "critique", "Remove the phone 98450 12345 from the ad")
    task_id = memory.router.store_outcome(workspace_id, task_type="campaign", steps=["plan", "write"],
                                          description="Diwali teaser for meera.iyer@gmail.com's list",
                                          success=True, quality=0.9, plan={"audience": "Meera, +91 98450 12345"})
    with connect(migrated_dsn) as conn:
        texts = [r["content"] for r in conn.execute(
            "SELECT content FROM public.memory_episodes WHERE workspace_id = %s", (workspace_id,))]
        plan = conn.execute("SELECT plan FROM public.memory_tasks WHERE episode_id = %s", (task_id,)).fetchone()["plan"]
    assert len(texts) == 3 and all(_leaks(text) == [] and find_pii(text) == [] for text in texts)
    assert plan == {"audience": "Meera, [PHONE]"}
    [recalled] = memory.episodic.recall(workspace_id, "UPI refund", k=1, kinds=["interaction"])
    assert recalled.id == episode_id and recalled.text.startswith("User: my UPI is [UPI].")


# ------------------------------------------------------------------------------------------- traces and logs


def test_traces_reach_langsmith_with_personal_data_masked(migrated_dsn: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGSMITH_DISABLE_RUN_COMPRESSION", "true")
    server = serve_in_thread(create_langsmith(EmulatorConfig(database_url="")))
    try:
        settings = make_settings(migrated_dsn, LANGSMITH_TRACING="true", LANGSMITH_ENDPOINT=server.url,
                                 LANGSMITH_API_KEY="local-langsmith-key")
        client = langsmith_client(settings)
        assert client is not None

        @langsmith.traceable(run_type="chain", name="reply_to_customer")
        def reply(message: str, contact: dict[str, str]) -> dict[str, str]:
            if "fail" in message:
                raise ValueError(f"cannot reach {contact['phone']}")
            return {"draft": f"Dear Meera, we refunded {contact['upi']}; write to us from {contact['email']}."}

        contact = {"phone": "+91 98450 12345", "upi": "meera@oksbi", "email": "meera.iyer@gmail.com"}
        with langsmith.tracing_context(client=client, enabled=True, project_name="muse",
                                       metadata={"customer_email": "meera.iyer@gmail.com"}):
            reply(CUSTOMER, contact)
            with pytest.raises(ValueError):
                reply("fail", contact)
        client.flush(timeout=10)
        runs = httpx.get(f"{server.url}/_emulator/runs").json()
        assert len(runs) == 2 and {r["name"] for r in runs} == {"reply_to_customer"}
        sent = str(runs)
        assert _leaks(sent) == [] and "98450" not in sent
        ok = next(r for r in runs if r["outputs"])
        assert ok["outputs"]["draft"] == "Dear Meera, we refunded [UPI]; write to us from [EMAIL]."
        assert "[AADHAAR]" in ok["inputs"]["message"] and ok["inputs"]["contact"]["phone"] == "[PHONE]"
        failed = next(r for r in runs if r["error"])
        assert "cannot reach [PHONE]" in failed["error"]
        assert ok["extra"]["metadata"]["customer_email"] == "[EMAIL]"
        client.cleanup()
    finally:
        server.stop()


def test_a_step_functions_graph_run_is_traced_with_personal_data_masked(pool: ConnectionPool, migrated_dsn: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGSMITH_DISABLE_RUN_COMPRESSION", "true")
    server = serve_in_thread(create_langsmith(EmulatorConfig(database_url="")))
    try:
        settings = make_settings(migrated_dsn, LANGSMITH_TRACING="true", LANGSMITH_ENDPOINT=server.url,
                                 LANGSMITH_API_KEY="local-langsmith-key", MUSE_PII_TRACE_MODE="mask")
        h = Harness(pool=pool, dsn=migrated_dsn, settings=settings)
        client = langsmith_client(settings)
        for runtime in h.runtimes.values():
            runtime.tracer = client
        h.create(h.workspace(), objective="Win back Meera (meera.iyer@gmail.com, +91 98450 12345) before Diwali")
        h.pump(limit=1)
        runs = httpx.get(f"{server.url}/_emulator/runs").json()
        assert "campaign.planner" in {r["name"] for r in runs}
        sent = str([(r["inputs"], r["outputs"], r["error"]) for r in runs])
        assert "Win back Meera (m***@gmail.com, +XX XXXXX X2345)" in sent
        assert "meera.iyer@gmail.com" not in str(runs) and "98450 12345" not in str(runs)
        assert client is not None
        client.cleanup()
    finally:
        server.stop()


def test_a_function_process_masks_every_log_record() -> None:
    """The `api` function as functions-framework loads it: its own loggers, a library's and a traceback."""
    root = Path(__file__).resolve().parents[2]
    script = f"""
import logging, sys
from functions_framework import create_app
create_app(target="api", source="{root / 'functions' / 'api' / 'main.py'}")
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(name)s %(message)s")
logging.getLogger("muse.knowledge").info("ingest for %s", "meera.iyer@gmail.com")
logging.getLogger("urllib3.connectionpool").warning("GET /pay?vpa=meera@oksbi&card=4111111111111111")
try:
    raise RuntimeError("Aadhaar {SPACED_AADHAAR} rejected")
except RuntimeError:
    logging.getLogger("muse.http").exception("unhandled error for +91 98450 12345")
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr
    assert "muse.knowledge ingest for [EMAIL]" in out.stdout
    assert "vpa=[UPI]&card=[CARD]" in out.stdout
    assert "unhandled error for [PHONE]" in out.stdout and "RuntimeError: Aadhaar [AADHAAR] rejected" in out.stdout
    assert _leaks(out.stdout + out.stderr) == []
