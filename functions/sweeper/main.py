"""Function `sweeper`: heals what crashes left behind (unpublished outbox rows, dead leases, stalled threads).

A QStash schedule delivers here every minute; each pass is idempotent.
"""

import flask
import functions_framework

from shared.http import json_errors, qstash_response
from shared.runtime.sweeper import sweeper_runtime

json_errors()


@functions_framework.http
def sweeper(request: flask.Request) -> flask.Response:
    """Run one sweep pass; 401 without a valid QStash signature."""
    return qstash_response(
        lambda: sweeper_runtime().handle(request.get_data(), request.headers.get("Upstash-Signature"))
    )
