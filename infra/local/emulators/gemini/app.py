"""The Flask app of the Gemini emulator: API-key check, the model and cache routes, the control plane."""

from __future__ import annotations

import time

import flask
from werkzeug.exceptions import HTTPException

from infra.local.emulators._scripting import register_script_routes
from infra.local.emulators.config import EmulatorConfig, model_latency
from infra.local.emulators.gemini.actions import MODEL_ACTIONS
from infra.local.emulators.gemini.errors import error_response
from infra.local.emulators.gemini.images import image_response, wants_image
from infra.local.emulators.gemini.scripting import State

API_VERSIONS = ("v1", "v1beta")


def create_app(config: EmulatorConfig) -> flask.Flask:
    """Build the Gemini emulator; every app instance keeps its own script, log and caches."""
    app = flask.Flask(__name__)
    app.url_map.strict_slashes = False
    state = State()

    @app.before_request
    def _authenticate() -> flask.Response | None:
        if flask.request.path.startswith("/_emulator"):
            return None
        key = flask.request.headers.get("x-goog-api-key") or flask.request.args.get("key")
        if not key:
            return error_response(401, "Method doesn't allow unregistered callers. Please use an API key.")
        if key != config.gemini_api_key:
            return error_response(403, "API key not valid. Please pass a valid API key.")
        return None

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> flask.Response:
        return error_response(exc.code or 500, exc.description or exc.name)

    @app.post("/<version>/models/<target>")
    def model_action(version: str, target: str) -> flask.Response:
        model, _, action = target.rpartition(":")
        if version not in API_VERSIONS or not model:
            return error_response(404, f"Unknown route {flask.request.path}")
        body = flask.request.get_json(silent=True)
        if not isinstance(body, dict):
            return error_response(400, "Invalid JSON payload received.")
        handler = MODEL_ACTIONS.get(action)
        if handler is None:
            return error_response(404, f"Method {action!r} is not supported by the emulator.")
        if action in ("generateContent", "streamGenerateContent"):
            time.sleep(model_latency(config.gemini_latency_seconds, model))
        if action == "generateContent" and wants_image(body):
            return image_response(state, model, action, body)
        return handler(state, model, action, body)

    @app.post("/<version>/cachedContents")
    def create_cache(version: str) -> flask.Response:
        body = flask.request.get_json(silent=True) or {}
        return flask.jsonify(state.caches.create(body))

    @app.get("/<version>/cachedContents")
    def list_caches(version: str) -> flask.Response:
        return flask.jsonify({"cachedContents": state.caches.public_list()})

    @app.route("/<version>/cachedContents/<cache_id>", methods=["GET", "PATCH", "DELETE"])
    def one_cache(version: str, cache_id: str) -> flask.Response:
        name = f"cachedContents/{cache_id}"
        if flask.request.method == "DELETE":
            found = state.caches.delete(name)
            return flask.jsonify({}) if found else error_response(404, f"{name} not found")
        if flask.request.method == "PATCH":
            record = state.caches.update(name, flask.request.get_json(silent=True) or {})
        else:
            record = state.caches.get(name)
        return flask.jsonify(record.public()) if record else error_response(404, f"{name} not found")

    register_script_routes(app, state, error_response)

    return app
