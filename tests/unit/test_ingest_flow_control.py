"""Which QStash flow control each message is published with: per campaign, and per workspace for ingest rounds."""

from __future__ import annotations

import uuid

from qstash import QStash

from shared.knowledge.models import IngestMessage
from shared.queue import QStashStepQueue
from tests.integration.knowledge_world import kb_settings


def _queue(**env: str) -> QStashStepQueue:
    return QStashStepQueue(client=QStash("t", base_url="http://127.0.0.1:9"), settings=kb_settings("unused", **env))


def test_ingest_rounds_share_their_workspace_key() -> None:
    workspace, other = uuid.uuid4(), uuid.uuid4()
    queue = _queue()
    first = queue.flow_control("ingest", IngestMessage(document_id=uuid.uuid4(), workspace_id=workspace))
    later = queue.flow_control("ingest", IngestMessage(document_id=uuid.uuid4(), round=7, workspace_id=workspace))
    elsewhere = queue.flow_control("ingest", IngestMessage(document_id=uuid.uuid4(), workspace_id=other))
    assert first == later == {"key": f"ingest-{workspace}", "parallelism": 1}
    assert elsewhere == {"key": f"ingest-{other}", "parallelism": 1}
    assert queue.flow_control("ingest", IngestMessage(document_id=uuid.uuid4())) is None, "rounds written before"


def test_parallelism_and_rate_come_from_settings() -> None:
    workspace = uuid.uuid4()
    queue = _queue(MUSE_KNOWLEDGE_INGEST_PARALLELISM="3", MUSE_KNOWLEDGE_INGEST_RATE_PER_MINUTE="20")
    assert queue.flow_control("ingest", IngestMessage(document_id=uuid.uuid4(), workspace_id=workspace)) == {
        "key": f"ingest-{workspace}", "parallelism": 3, "rate": 20, "period": 60}
