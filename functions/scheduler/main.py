"""Function `scheduler`: each tick of a recurring schedule starts one move from its brief template.

QStash schedules (one per `POST /api/v1/schedules`) deliver here; the delivery's signature is verified and the
tick is keyed by its QStash message id, so a redelivered tick starts nothing new.
"""

import flask
import functions_framework

from shared.api.schedules import tick
from shared.http import json_errors, qstash_response

json_errors()


@functions_framework.http
def scheduler(request: flask.Request) -> flask.Response:
    """Start this tick's move (or acknowledge a duplicate, a paused or a deleted schedule)."""
    return qstash_response(lambda: tick(request))
