"""Function `phonepe_webhook`: PhonePe's S2S callback.

Verifies `Authorization` and hands the event to the payments step through QStash, importing
nothing of the graph stack so that it answers within PhonePe's few seconds on a cold start.
Every answer is JSON, errors raised by functions-framework itself (a 404 for `/robots.txt`) included.
"""

from functools import lru_cache

import flask
import functions_framework

from shared.http import handle_errors, json_errors, json_response
from shared.queue import QStashStepQueue, qstash_queue
from shared.settings import get_settings
from shared.webhooks import receive_phonepe_webhook

json_errors()


@lru_cache(maxsize=1)
def _queue() -> QStashStepQueue:
    return qstash_queue(get_settings())


@functions_framework.http
@handle_errors
def phonepe_webhook(request: flask.Request) -> flask.Response:
    """Acknowledge a verified webhook; 401 for a wrong Authorization, 400 for a malformed body."""
    if request.method != "POST":
        return json_response({"error": {"code": "method_not_allowed", "message": "PhonePe webhooks are POSTs."}},
                             405, {"Allow": "POST"})
    settings = get_settings()
    request.max_content_length = settings.api_max_body_bytes
    result = receive_phonepe_webhook(request.get_data(), request.headers.get("Authorization"), settings=settings,
                                     queue=_queue())
    return json_response(result)
