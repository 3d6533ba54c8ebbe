"""Function `chat`: the marketer's conversation, one durable turn per request, streamed as SSE or AG-UI.

`POST /api/v1/chat/stream` starts a turn and streams it; `GET /api/v1/chat/{conversationId}/events`
replays after `Last-Event-ID` and tails the running turn. The turn runs in a worker thread and outlives a
disconnected client, so the service runs with CPU outside requests (`--no-cpu-throttling`).
"""

import flask
import functions_framework

from shared.chat.app import dispatch
from shared.http import json_errors

json_errors()


@functions_framework.http
def chat(request: flask.Request) -> flask.Response:
    """Route one chat request."""
    return dispatch(request)
