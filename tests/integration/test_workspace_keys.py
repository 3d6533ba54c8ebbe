"""A workspace's own Gemini and Tavily keys: stored sealed, used first through the real SDKs, project key as fallback.

The Gemini and Tavily emulators accept only the workspace's key, so a call that reaches them with the
project's key is refused (the SDK's 401/`InvalidAPIKeyError`, which the clients report as a configuration
error): each call shows which key it carried.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from functools import partial
from typing import TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from infra.local.emulators import tavily
from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.gemini import create_app as create_gemini
from infra.local.serve import serve_in_thread
from shared.caching.scope import workspace_scope
from shared.db.pool import as_service, connect
from shared.errors import ConfigurationError, PermanentStepError
from shared.integrations.gemini import GeminiBackend, gemini_client
from shared.integrations.tavily import tavily_search
from shared.security.keys import WorkspaceKeys
from tests.integration.channel_fakes import ConnectionsWorld, key_spec
from tests.integration.harness import make_settings

OWN_GEMINI, OWN_TAVILY = "AIza-workspace-own-gemini-key", "tvly-workspace-own-key"


class Answer(BaseModel):
    text: str


class State(TypedDict, total=False):
    key: str | None


@pytest.fixture(scope="module")
def emulators() -> Iterator[dict[str, str]]:
    config = EmulatorConfig(database_url="postgresql://unused", gemini_api_key=OWN_GEMINI, tavily_api_key=OWN_TAVILY)
    servers = {"gemini": serve_in_thread(create_gemini(config)), "tavily": serve_in_thread(tavily.create_app(config))}
    try:
        yield {name: server.url for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()


def test_the_workspace_key_is_used_inside_its_workspace_and_the_project_key_elsewhere(
        pool: ConnectionPool, migrated_dsn: str, emulators: dict[str, str]) -> None:
    """Inside the workspace's scope both SDKs carry its own key; another workspace, or none, the project's; once
    the key is removed the project's again. A rejected own key is the workspace's error, naming the route that
    replaces it. The key is stored sealed (never in the row as text)."""
    settings = make_settings(migrated_dsn, MUSE_ENCRYPTION_KEYS=key_spec(k1=os.urandom(32)),
                             GEMINI_BASE_URL=emulators["gemini"], TAVILY_BASE_URL=emulators["tavily"],
                             MUSE_WORKSPACE_KEY_CACHE_SECONDS="0")
    world = ConnectionsWorld(dsn=migrated_dsn, pool=pool)
    workspace, user = world.workspace()
    other, _ = world.workspace()
    keys = WorkspaceKeys(pool=pool, settings=settings)
    with as_service(pool) as conn:
        keys.put(conn, workspace_id=workspace, service="gemini", api_key=OWN_GEMINI, user_id=user)
        keys.put(conn, workspace_id=workspace, service="tavily", api_key=OWN_TAVILY, user_id=user)
    with connect(migrated_dsn) as conn:
        stored = conn.execute("SELECT string_agg(secret::text, ' ') AS s FROM public.workspace_keys "
                              "WHERE workspace_id = %s", (workspace,)).fetchone()
    assert stored is not None and OWN_GEMINI not in stored["s"] and OWN_TAVILY not in stored["s"]

    gemini = GeminiBackend(partial(gemini_client, settings), own_key=partial(keys.current, "gemini"))
    web = tavily_search(settings, None, own_key=partial(keys.current, "tavily"))

    def ask() -> str:
        answer, _ = gemini.generate_once(model="gemini-2.5-flash", system="Be brief.", prompt="Say hi.",
                                         schema=Answer, timeout_seconds=20)
        return answer.text

    with workspace_scope(workspace):
        assert ask()
        assert web.search("diwali marketing ideas india", max_results=2)
    for scope in (other, None):
        with workspace_scope(scope) if scope else _nothing():
            with pytest.raises(ConfigurationError, match="GEMINI_API_KEY"):
                ask()
            with pytest.raises(ConfigurationError, match="TAVILY_API_KEY"):
                web.search("diwali marketing ideas india", max_results=2)
    wrong, _ = world.workspace()
    with as_service(pool) as conn:
        keys.put(conn, workspace_id=wrong, service="gemini", api_key="AIza-revoked-own-key", user_id=user)
        keys.put(conn, workspace_id=wrong, service="tavily", api_key="tvly-revoked-own-key", user_id=user)
    with workspace_scope(wrong):
        with pytest.raises(PermanentStepError, match="workspace's own API key.*/workspace/keys/gemini"):
            ask()
        with pytest.raises(PermanentStepError, match="workspace's own API key.*/workspace/keys/tavily"):
            web.search("diwali marketing ideas india", max_results=2)
    with as_service(pool) as conn:
        assert keys.delete(conn, workspace_id=workspace, service="tavily")
        assert not keys.delete(conn, workspace_id=workspace, service="tavily")
    with workspace_scope(workspace), pytest.raises(ConfigurationError, match="TAVILY_API_KEY"):
        web.search("diwali marketing ideas india", max_results=2)
    assert keys.get(str(uuid.uuid4()), "gemini") is None


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_a_key_that_does_not_open_falls_back_to_the_project_key(pool: ConnectionPool, migrated_dsn: str) -> None:
    """A key sealed under a key id this deployment no longer has is logged and treated as absent."""
    world = ConnectionsWorld(dsn=migrated_dsn, pool=pool)
    workspace, user = world.workspace()
    sealing = WorkspaceKeys(pool=pool, settings=make_settings(migrated_dsn, MUSE_ENCRYPTION_KEYS=key_spec(
        old=os.urandom(32))))
    with as_service(pool) as conn:
        sealing.put(conn, workspace_id=workspace, service="gemini", api_key=OWN_GEMINI, user_id=user)
    assert sealing.get(workspace, "gemini") == OWN_GEMINI
    rotated_away = WorkspaceKeys(pool=pool, settings=make_settings(migrated_dsn, MUSE_ENCRYPTION_KEYS=key_spec(
        new=os.urandom(32))))
    assert rotated_away.get(workspace, "gemini") is None


def test_inside_a_campaign_step_the_run_metadata_names_the_workspace(pool: ConnectionPool, migrated_dsn: str) -> None:
    """A step's graph run carries `workspace_id` in its metadata (`shared.runtime.step`); a node's lookup finds the
    workspace's key there, and a run of another workspace finds none."""
    settings = make_settings(migrated_dsn, MUSE_ENCRYPTION_KEYS=key_spec(k1=os.urandom(32)))
    world = ConnectionsWorld(dsn=migrated_dsn, pool=pool)
    workspace, user = world.workspace()
    keys = WorkspaceKeys(pool=pool, settings=settings)
    with as_service(pool) as conn:
        keys.put(conn, workspace_id=workspace, service="tavily", api_key=OWN_TAVILY, user_id=user)
    graph = StateGraph(State)
    graph.add_node("search", lambda state: {"key": keys.current("tavily")})
    graph.add_edge(START, "search")
    graph.add_edge("search", END)
    compiled = graph.compile()
    assert compiled.invoke({}, {"metadata": {"workspace_id": workspace}})["key"] == OWN_TAVILY
    assert compiled.invoke({}, {"metadata": {"workspace_id": str(uuid.uuid4())}})["key"] is None
