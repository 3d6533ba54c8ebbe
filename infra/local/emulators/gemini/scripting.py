"""The test control plane's state: scripted rules, the request log, and admitting a request.

A rule matches on model, action and a substring of the request text; it may answer with scripted
text, JSON or function calls, inject an error status, add a delay, and be limited to `times` uses.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import flask

from infra.local.emulators.gemini.caches import Caches
from infra.local.emulators.gemini.errors import STATUS_NAMES, error_response

GENERATION_ACTIONS = ("generateContent", "streamGenerateContent")


@dataclass
class Rule:
    """One scripted behaviour; `remaining` is None for unlimited uses."""

    index: int
    model: str | None
    contains: str | None
    action: str | None
    response: dict[str, Any] | None
    status: int | None
    message: str | None
    delay_seconds: float
    remaining: int | None

    @classmethod
    def parse(cls, index: int, raw: dict[str, Any]) -> Rule:
        match = raw.get("match") or {}
        times = raw.get("times")
        return cls(
            index=index,
            model=bare_model(match["model"]) if match.get("model") else None,
            contains=match.get("contains"),
            action=match.get("action"),
            response=raw.get("response"),
            status=int(raw["status"]) if raw.get("status") is not None else None,
            message=raw.get("message"),
            delay_seconds=float(raw.get("delay_seconds") or 0.0),
            remaining=int(times) if times is not None else None,
        )

    def matches(self, model: str, action: str, text: str) -> bool:
        """Whether this rule (with uses left) applies to a request."""
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.action is None and action not in GENERATION_ACTIONS:
            return False
        if self.action is not None and self.action != action:
            return False
        if self.model is not None and self.model != model:
            return False
        return self.contains is None or self.contains in text

    def view(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "match": {"model": self.model, "contains": self.contains, "action": self.action},
            "response": self.response,
            "status": self.status,
            "delay_seconds": self.delay_seconds,
            "remaining": self.remaining,
        }


@dataclass
class State:
    """Per-app mutable state, shared by the request threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    rules: list[Rule] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    caches: Caches = field(default_factory=Caches)
    rule_counter: itertools.count = field(default_factory=itertools.count)

    def add_rules(self, raw_rules: list[dict[str, Any]]) -> None:
        with self.lock:
            self.rules.extend(Rule.parse(next(self.rule_counter), raw) for raw in raw_rules)

    def clear_rules(self) -> None:
        with self.lock:
            self.rules.clear()

    def rule_views(self) -> list[dict[str, Any]]:
        with self.lock:
            return [rule.view() for rule in self.rules]

    def claim_rule(self, model: str, action: str, text: str) -> Rule | None:
        """Pick the first applicable rule and consume one of its uses."""
        with self.lock:
            for rule in self.rules:
                if rule.matches(model, action, text):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule
        return None

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            entry["seq"] = len(self.log)
            self.log.append(entry)

    def requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.log)

    def clear_requests(self) -> None:
        with self.lock:
            self.log.clear()


def admit(
    state: State, model: str, action: str, text: str, body: dict[str, Any]
) -> tuple[Rule | None, flask.Response | None]:
    """Claim the matching rule, log the request, then honour the rule's delay and injected error.

    Returns the rule (its `response` only matters to generation) and, for an injected error, the
    response to send instead of the normal answer.
    """
    rule = state.claim_rule(model, action, text)
    status = rule.status if rule and rule.status else 200
    state.record(_log_entry(model, action, text, body, rule, status))
    if rule and rule.delay_seconds > 0:
        time.sleep(rule.delay_seconds)
    if rule and rule.status and rule.status >= 400:
        return rule, error_response(rule.status, rule.message or f"Emulated {STATUS_NAMES.get(rule.status, 'error')}")
    return rule, None


def _log_entry(
    model: str, action: str, text: str, body: dict[str, Any], rule: Rule | None, status: int
) -> dict[str, Any]:
    return {
        "model": model,
        "action": action,
        "path": flask.request.path,
        "text": text,
        "time": time.time(),
        "rule": rule.index if rule else None,
        "status": status,
        "body": body,
    }


def bare_model(model: str) -> str:
    return model.removeprefix("models/")
