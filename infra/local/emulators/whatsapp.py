"""WhatsApp Business Cloud API emulator: template messages from one business phone number.

Mounted at `/whatsapp` in the local stack (`WHATSAPP_GRAPH_URL`). Wire shapes follow reference
`publishing-apis.md` §5 as pywa sends them: `POST /vNN.0/{phone-number-id}/messages` with a Bearer system-user
token and a JSON body (`messaging_product`, `to`, `type`, `template` {`name`, `language.code`, `components`},
`biz_opaque_callback_data`), answered with `contacts` and `messages[].id` (`wamid.…`, `message_status:
accepted`). Business-initiated messages must be approved templates: an unknown template is error 132001, one
not yet approved 132015 (paused/pending), a language it lacks 132001, and free-form `text` is refused with
131047 (no customer-service window is open in the emulator).

Test side: `GET /__emu/posts` (every accepted message with its tracker), `/__emu/faults` (see `_graph`), and
`POST /__emu/token/restore` (un-revoke and un-expire the system-user token after a `revoked`/`expired` fault).
State lives in the stack's Postgres (schema `whatsapp_emulator`).
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import flask

from infra.local.emulators._graph import (
    GraphError,
    GraphStore,
    bad_parameter,
    before_call,
    hold_back,
    register_control_routes,
    request_token,
)
from infra.local.emulators.config import EmulatorConfig

LOCAL_WHATSAPP_TOKEN = "local-whatsapp-system-user-token"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_PHONE_NUMBER = "+91 80 0000 0000"
TEMPLATES: dict[str, dict[str, Any]] = {
    "muse_campaign": {"status": "APPROVED", "category": "MARKETING", "languages": ("en", "en_US", "hi")},
    "muse_offer": {"status": "APPROVED", "category": "MARKETING", "languages": ("en", "hi", "ta", "bn", "or", "as")},
    "muse_pending": {"status": "PENDING", "category": "MARKETING", "languages": ("en",)},
}
"""Templates of the emulator's WhatsApp Business Account and their review state."""

SCHEMA = "whatsapp_emulator"
_SCHEMA_LOCK = 0x05_7A_57_01
_PHONE = re.compile(r"^\+?[1-9][0-9]{7,14}$")


def _wamid(sequence: str, to: str) -> str:
    """An id shaped like WhatsApp's (`wamid.HBgM…`): base64 of the recipient and a sequence."""
    return "wamid." + base64.b64encode(f"{to}\x15\x02\x00\x11\x18\x12{sequence}".encode()).decode().rstrip("=")


def create_app(config: EmulatorConfig, *, token: str = LOCAL_WHATSAPP_TOKEN) -> flask.Flask:
    """Build the WhatsApp Cloud API emulator over `config.database_url`."""
    app = flask.Flask(__name__)
    app.url_map.strict_slashes = False
    store = GraphStore(config.database_url, schema=SCHEMA, lock=_SCHEMA_LOCK)
    app.extensions["whatsapp_emulator"] = store
    register_control_routes(app, store)

    def authorized(route: str) -> dict[str, Any] | None:
        sent = request_token()
        if sent == token and store.token(sent) is None:
            store.add_token(sent, kind="system_user", subject=PHONE_NUMBER_ID, expires_at=None)
        return before_call(store, route, sent)

    @app.post("/<version>/<phone_id>/messages")
    def send(version: str, phone_id: str) -> Any:
        if phone_id != PHONE_NUMBER_ID:
            raise bad_parameter(f"Unsupported post request. Object with ID '{phone_id}' does not exist", subcode=33)
        fault = authorized("messages")
        body = flask.request.get_json(silent=True)
        if not isinstance(body, dict):
            raise bad_parameter("The request body must be JSON")
        if body.get("messaging_product") != "whatsapp":
            raise bad_parameter("The parameter messaging_product is required and must be 'whatsapp'")
        to = str(body.get("to") or "")
        if not _PHONE.match(to):
            raise GraphError(400, 131009, "(#131009) Parameter value is not valid: `to` must be a phone number")
        kind = body.get("type", "text")
        if kind == "text":
            raise GraphError(400, 131047, "Re-engagement message: more than 24 hours have passed since the "
                             "recipient last replied; send an approved template")
        if kind != "template":
            raise bad_parameter(f"Message type {kind!r} is not supported by the emulator")
        template = body.get("template")
        if not isinstance(template, dict) or not isinstance(template.get("name"), str):
            raise bad_parameter("`template.name` is required")
        known = TEMPLATES.get(template["name"])
        language = (template.get("language") or {}).get("code")
        if known is None or language not in known["languages"]:
            raise GraphError(404, 132001, f"(#132001) Template name does not exist in the translation: "
                             f"{template['name']!r} ({language})")
        if known["status"] != "APPROVED":
            raise GraphError(400, 132015, f"(#132015) Template is {known['status']}: only approved templates "
                             "can be sent")
        components = template.get("components") or []
        if not isinstance(components, list):
            raise bad_parameter("`template.components` must be a list")
        tracker = body.get("biz_opaque_callback_data")
        if tracker is not None and (not isinstance(tracker, str) or len(tracker) > 512):
            raise bad_parameter("`biz_opaque_callback_data` must be a string of at most 512 characters")
        wa_id = to.lstrip("+")
        message = store.add("message", PHONE_NUMBER_ID, {
            "to": wa_id, "type": "template", "template": template, "biz_opaque_callback_data": tracker,
            "message_status": "accepted", "timestamp": int(time.time())}, id_base=0)
        wamid = _wamid(message["id"], wa_id)
        store.update(message["id"], {"wamid": wamid})
        hold_back(fault)
        return {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": wa_id}],
                "messages": [{"id": wamid, "message_status": "accepted"}]}

    @app.get("/__emu/posts")
    def posts() -> Any:
        messages = store.listing(("message",), limit=1000)
        return {"posts": [{key: value for key, value in item.items() if key != "_kind"} for item in messages]}

    @app.post("/__emu/token/restore")
    def restore_token() -> Any:
        store.add_token(token, kind="system_user", subject=PHONE_NUMBER_ID, expires_at=None)
        with store.db.transaction() as conn:
            conn.execute(f"UPDATE {SCHEMA}.tokens SET revoked = false, expires_at = NULL WHERE token = %s", (token,))
        return {"restored": True}

    return app
