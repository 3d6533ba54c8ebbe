"""The Flask app of the QStash emulator: authentication, the error envelope, and starting the workers."""

from __future__ import annotations

import hmac
import logging

import flask
from werkzeug.exceptions import HTTPException

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.qstash import store as db
from infra.local.emulators.qstash.delivery import DeliveryWorker
from infra.local.emulators.qstash.emulator import QStashEmulator
from infra.local.emulators.qstash.errors import ApiError
from infra.local.emulators.qstash.routes import (
    register_emulator_routes,
    register_management_routes,
    register_publish_routes,
    register_schedule_routes,
)

logger = logging.getLogger(__name__)


def create_app(config: EmulatorConfig) -> flask.Flask:
    """The QStash v2 API as a Flask app served at its root; starts the delivery worker and the scheduler.

    Creates the `qstash_emulator` schema if absent. Stop both with
    `app.extensions["qstash_emulator"].stop()`.
    """
    store = db.QStashStore(config.database_url)
    store.ensure_schema()
    emulator = QStashEmulator(config, store, DeliveryWorker(store, config))
    app = flask.Flask(__name__)
    app.url_map.merge_slashes = False
    app.extensions["qstash_emulator"] = emulator
    _register_handlers(app, config)
    register_publish_routes(app, emulator)
    register_management_routes(app, emulator)
    register_schedule_routes(app, emulator)
    register_emulator_routes(app, emulator)
    emulator.start()
    return app


def _error(status: int, message: str) -> flask.Response:
    response = flask.jsonify(error=message)
    response.status_code = status
    return response


def _register_handlers(app: flask.Flask, config: EmulatorConfig) -> None:
    @app.before_request
    def authenticate() -> flask.Response | None:
        if flask.request.path.startswith("/_emulator/"):
            return None
        header = flask.request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else flask.request.args.get("qstash_token")
        if token and hmac.compare_digest(token.encode(), config.qstash_token.encode()):
            return None
        return _error(401, "unauthorized: pass the QStash token as `Authorization: Bearer <token>`")

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> flask.Response:
        return _error(exc.status, exc.message)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> flask.Response:
        return _error(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> flask.Response:
        logger.exception("QStash emulator request failed")
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")
