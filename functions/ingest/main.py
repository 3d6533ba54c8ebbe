"""Function `ingest`: turns a submitted knowledge resource into searchable chunks, one round per delivery.

QStash delivers `IngestMessage`s published by the API (and by earlier rounds). A round extracts and
chunks the original the first time, embeds one batch of chunks, and chains the next round until the
resource is `ready`. Rounds are idempotent, so QStash's at-least-once delivery never duplicates chunks.
"""

from functools import lru_cache

import flask
import functions_framework
from qstash import Receiver

from shared.http import qstash_response
from shared.knowledge.service import KnowledgeService, StepReply, knowledge_service
from shared.queue import qstash_receiver, verify_delivery
from shared.settings import get_settings


@lru_cache(maxsize=1)
def _service() -> KnowledgeService:
    return knowledge_service(get_settings())


@lru_cache(maxsize=1)
def _receiver() -> Receiver:
    return qstash_receiver(get_settings())


def _handle(request: flask.Request) -> StepReply:
    body = request.get_data()
    verify_delivery(_receiver(), body=body, signature=request.headers.get("Upstash-Signature"),
                    url=get_settings().function_url("ingest"))
    return _service().handle_delivery(body)


@functions_framework.http
def ingest(request: flask.Request) -> flask.Response:
    """Run one ingest round (or acknowledge a duplicate); 401 without a valid QStash signature."""
    return qstash_response(lambda: _handle(request))
