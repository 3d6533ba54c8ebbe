"""What keeps a step's fixed cost down, on real Postgres: batched statements, shared heartbeats, lazy checks."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from shared.db import pool as pool_module
from shared.db.batch import execute_batch
from shared.db.pool import connect
from shared.db.threads import ThreadRepository
from shared.db.workspaces import ensure_workspace
from shared.runtime.lease import Heartbeat


def _campaign(dsn: str) -> uuid.UUID:
    campaign_id = uuid.uuid4()
    with connect(dsn) as conn:
        workspace_id = ensure_workspace(conn, slug=f"rt-{uuid.uuid4().hex[:8]}", name="rt", user_id=str(uuid.uuid4()))
        conn.execute("INSERT INTO public.campaigns (id, workspace_id, created_by, kind, brief) "
                     "VALUES (%s, %s, %s, 'move', '{}')", (campaign_id, workspace_id, uuid.uuid4()))
    return campaign_id


class TestExecuteBatch:
    def test_statements_run_in_order_and_each_returns_its_rows(self, pool: ConnectionPool) -> None:
        tricky = {"text": "100% off, %s and %(x)s stay literal", "quote": "it's"}
        with pool.connection() as conn:
            results = execute_batch(conn, [
                ("CREATE TEMP TABLE batch_t (id serial, data jsonb)", None),
                ("INSERT INTO batch_t (data) VALUES (%s) RETURNING id, data", (Jsonb(tricky),)),
                ("INSERT INTO batch_t (data) VALUES (%(d)s)", {"d": Jsonb({"n": 2})}),
                ("SELECT count(*) AS n FROM batch_t", None),
            ])
        assert results[0] == [] and results[2] == []
        assert results[1] == [{"id": 1, "data": tricky}]
        assert results[3] == [{"n": 2}]

    def test_a_failing_statement_stops_the_rest_and_aborts_the_transaction(self, pool: ConnectionPool) -> None:
        with pool.connection() as conn:
            conn.execute("CREATE TEMP TABLE batch_f (id int PRIMARY KEY)")
            with pytest.raises(psycopg.errors.UniqueViolation):
                execute_batch(conn, [("BEGIN", None), ("INSERT INTO batch_f VALUES (1)", None),
                                     ("INSERT INTO batch_f VALUES (1)", None),
                                     ("INSERT INTO batch_f VALUES (2)", None)])
            conn.execute("ROLLBACK")
            assert conn.execute("SELECT count(*) AS n FROM batch_f").fetchone() == {"n": 0}

    def test_set_local_applies_to_the_implicit_transaction_only(self, pool: ConnectionPool) -> None:
        with pool.connection() as conn:
            _, inside = execute_batch(conn, [("SET LOCAL synchronous_commit = off", None),
                                             ("SELECT current_setting('synchronous_commit') AS s", None)])
            after = conn.execute("SELECT current_setting('synchronous_commit') AS s").fetchone()
        assert inside == [{"s": "off"}] and after == {"s": "on"}


class TestHeartbeat:
    def test_a_held_lease_outlives_its_seconds_and_is_left_alone_after_exit(self, pool: ConnectionPool,
                                                                            migrated_dsn: str) -> None:
        threads = ThreadRepository(pool)
        grant = threads.acquire(_campaign(migrated_dsn), owner="hb", seconds=0.6, message={})
        with Heartbeat(threads, grant, 0.6):
            time.sleep(1.5)
            assert threads.lease(grant.campaign_id)[2] > 0  # type: ignore[index]
        time.sleep(1.0)
        assert threads.lease(grant.campaign_id)[2] == 0  # type: ignore[index]

    def test_a_renewal_that_finds_the_lease_gone_stops(self, pool: ConnectionPool, migrated_dsn: str) -> None:
        threads = ThreadRepository(pool)
        campaign_id = _campaign(migrated_dsn)
        grant = threads.acquire(campaign_id, owner="first", seconds=0.3, message={})
        with Heartbeat(threads, grant, 0.3) as heartbeat:
            threads.release(grant)
            successor = threads.acquire(campaign_id, owner="second", seconds=5, message={})
            time.sleep(0.4)
            assert not heartbeat.beat()
        assert threads.lease(campaign_id)[:2] == ("second", successor.fence)  # type: ignore[index]

    def test_steps_start_no_thread_of_their_own(self, pool: ConnectionPool, migrated_dsn: str) -> None:
        threads = ThreadRepository(pool)
        grants = [threads.acquire(_campaign(migrated_dsn), owner="many", seconds=30, message={}) for _ in range(3)]
        with Heartbeat(threads, grants[0], 30):
            pass
        before = threading.active_count()
        for grant in grants:
            with Heartbeat(threads, grant, 30):
                assert threading.active_count() == before


class TestPoolCheck:
    def test_only_a_connection_idle_for_a_while_is_checked_with_a_round_trip(
            self, migrated_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
        checks: list[object] = []
        real = ConnectionPool.check_connection
        monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(lambda c: (checks.append(c), real(c))))
        pool = pool_module.create_pool(migrated_dsn, max_size=1)
        try:
            for _ in range(3):
                with pool.connection() as conn:
                    conn.execute("SELECT 1")
            assert len(checks) == 1  # the new connection; the next two were returned moments before
            monkeypatch.setattr(pool_module, "CHECK_AFTER_IDLE_SECONDS", 0.0)
            with pool.connection() as conn:
                conn.execute("SELECT 1")
            assert len(checks) == 2
        finally:
            pool.close()
