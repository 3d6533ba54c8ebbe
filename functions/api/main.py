"""Function `api`: the frontend's HTTP API (campaigns, decisions, checkout, events, OpenAPI).

Every request carries a Supabase access token; reads and writes run under row-level security,
so another workspace's campaign is a 404. Every answer is JSON, errors raised by functions-framework
itself (a 404 for `/robots.txt`) included.
"""

import flask
import functions_framework

from shared.api.app import dispatch
from shared.http import any_error_response


@functions_framework.errorhandler(Exception)
def _json_errors(exc: Exception) -> flask.Response:
    return any_error_response(exc)


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    """Route one API request."""
    return dispatch(request)
