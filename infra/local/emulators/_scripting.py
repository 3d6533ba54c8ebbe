"""The `/_emulator/script` and `/_emulator/requests` routes shared by the scriptable emulators."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import flask


class Scriptable(Protocol):
    """An emulator's rule book and request log."""

    def add_rules(self, rules: list[Any]) -> Any: ...
    def rule_views(self) -> list[dict[str, Any]]: ...
    def clear_rules(self) -> Any: ...
    def requests(self) -> list[dict[str, Any]]: ...
    def clear_requests(self) -> Any: ...


def register_script_routes(app: flask.Flask, control: Scriptable,
                           error: Callable[[int, str], flask.Response]) -> None:
    """Add rules (each gets an `index` the request log refers to), list or clear them, read or clear the log."""

    @app.post("/_emulator/script")
    def add_rules() -> flask.Response:
        rules = (flask.request.get_json(silent=True) or {}).get("rules")
        if not isinstance(rules, list):
            return error(400, "expected {'rules': [...]}")
        control.add_rules(rules)
        return flask.jsonify({"rules": control.rule_views()})

    @app.get("/_emulator/script")
    def get_rules() -> flask.Response:
        return flask.jsonify({"rules": control.rule_views()})

    @app.delete("/_emulator/script")
    def clear_rules() -> flask.Response:
        control.clear_rules()
        return flask.jsonify({"rules": []})

    @app.get("/_emulator/requests")
    def get_requests() -> flask.Response:
        return flask.jsonify(control.requests())

    @app.delete("/_emulator/requests")
    def clear_requests() -> flask.Response:
        control.clear_requests()
        return flask.jsonify([])
