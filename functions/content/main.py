"""Step function `content`: Writes channel-specific copy from the approved strategy.

QStash delivers step messages here; the shared runtime verifies the signature, takes the thread's
lease, runs the graph's `content` nodes and publishes the next step.
"""

import flask
import functions_framework

from shared.http import json_errors, qstash_response
from shared.runtime.wiring import step_runtime

json_errors()


@functions_framework.http
def content(request: flask.Request) -> flask.Response:
    """Advance one campaign by one step (or acknowledge a duplicate)."""
    return qstash_response(
        lambda: step_runtime("content").handle(request.get_data(), request.headers.get("Upstash-Signature"))
    )
