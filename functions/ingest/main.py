"""Function `ingest`: turns a submitted knowledge resource into searchable chunks, one round per delivery.

QStash delivers `IngestMessage`s published by the API (and by earlier rounds). A round extracts and
chunks the original the first time, embeds one batch of chunks, and chains the next round until the
resource is `ready`. Rounds are idempotent, so QStash's at-least-once delivery never duplicates chunks.
"""

from functools import lru_cache

import flask
import functions_framework

from shared.http import json_errors, qstash_response
from shared.knowledge.service import KnowledgeService, knowledge_service
from shared.settings import get_settings

json_errors()


@lru_cache(maxsize=1)
def _service() -> KnowledgeService:
    return knowledge_service(get_settings())


@functions_framework.http
def ingest(request: flask.Request) -> flask.Response:
    """Run one ingest round (or acknowledge a duplicate); 401 without a valid QStash signature."""
    return qstash_response(
        lambda: _service().handle_delivery(request.get_data(), request.headers.get("Upstash-Signature"))
    )
