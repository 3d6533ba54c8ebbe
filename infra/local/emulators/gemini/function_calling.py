"""Function calling: scripted `functionCall` parts, checked against the functions the request declares."""

from __future__ import annotations

from typing import Any


def function_call_parts(calls: Any, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """`functionCall` parts for scripted calls, or the reason the request cannot carry them."""
    declared = _declared_functions(body)
    if not isinstance(calls, list) or not calls:
        return [], "scripted 'function_calls' must be a non-empty list of {'name': ..., 'args': {...}}"
    parts: list[dict[str, Any]] = []
    for call in calls:
        name = call.get("name") if isinstance(call, dict) else None
        if not name:
            return [], f"scripted function call {call!r} has no 'name'"
        if name not in declared:
            return [], (f"scripted function call {name!r} is not declared in the request's tools "
                        f"(declared: {sorted(declared) or 'none'}); add it to the tools or fix the script")
        function_call: dict[str, Any] = {"name": name, "args": call.get("args") or {}}
        if call.get("id"):
            function_call["id"] = call["id"]
        parts.append({"functionCall": function_call})
    return parts, None


def function_calling_mode(body: dict[str, Any]) -> str:
    config = (body.get("toolConfig") or body.get("tool_config") or {})
    calling = config.get("functionCallingConfig") or config.get("function_calling_config") or {}
    return str(calling.get("mode") or "AUTO").upper()


def _declared_functions(body: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            declarations = tool.get("functionDeclarations") or tool.get("function_declarations") or []
            names.update(d["name"] for d in declarations if isinstance(d, dict) and d.get("name"))
    return names
