"""Function `publish`: fires one scheduled publication, exactly once, when QStash delivers its delayed message.

The shared edge verifies QStash's signature; `shared.publishing.engine.Publisher.fire` claims the
publication (a duplicate, stale or early delivery changes nothing), commits `sending` before the platform
call and records what the platform answered.
"""

import flask
import functions_framework

from shared.http import json_errors, qstash_response
from shared.publishing.function import publish_function

json_errors()


@functions_framework.http
def publish(request: flask.Request) -> flask.Response:
    """Fire one publication (or acknowledge a duplicate); 401 without a valid QStash signature."""
    signature = request.headers.get("Upstash-Signature")
    return qstash_response(lambda: publish_function().handle(request.get_data(), signature))
