"""Function `api`: the frontend's HTTP API (campaigns, decisions, checkout, events, OpenAPI).

Every request carries a Supabase access token; reads and writes run under row-level security,
so another workspace's campaign is a 404. Every answer is JSON, errors raised by functions-framework
itself (a 404 for `/robots.txt`) included.
"""

import flask
import functions_framework

from shared.api.app import dispatch
from shared.http import json_errors

json_errors()


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    """Route one API request."""
    return dispatch(request)
