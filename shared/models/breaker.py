"""A circuit breaker per model, so a failing model is skipped instead of waited on.

States follow the classic pattern: `closed` lets calls through and counts consecutive failures;
at `failure_threshold` it turns `open` and refuses calls for `cooldown_seconds`; then it is
`half_open` and lets exactly one probe through, whose success closes it and whose failure opens
it again for another cool-down. State lives in the process (one Cloud Run instance); the clock is
injected so tests can move time by hand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]
Clock = Callable[[], float]
"""Monotonic seconds; `time.monotonic` in production, a `FakeClock` in tests."""


@dataclass
class CircuitBreaker:
    """The breaker of one model; thread-safe, since parallel graph branches share it."""

    name: str
    failure_threshold: int = 3
    cooldown_seconds: float = 30.0
    clock: Clock = time.monotonic
    _state: BreakerState = "closed"
    _failures: int = 0
    _opened_at: float = 0.0
    _probing: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {self.failure_threshold}")
        if self.cooldown_seconds < 0:
            raise ValueError(f"cooldown_seconds must not be negative, got {self.cooldown_seconds}")

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker whose cool-down has passed reads as `half_open`)."""
        with self._lock:
            return self._current()

    def retry_at(self) -> float | None:
        """When an open breaker lets a probe through (clock seconds); None unless open."""
        with self._lock:
            return self._opened_at + self.cooldown_seconds if self._current() == "open" else None

    def allow(self) -> bool:
        """Whether a call may go to the model now; in `half_open` only the first caller gets the probe."""
        with self._lock:
            state = self._current()
            if state == "closed":
                return True
            if state == "half_open" and not self._probing:
                self._state, self._probing = "half_open", True
                return True
            return False

    def record_success(self) -> None:
        """The model answered: close the breaker and forget past failures."""
        with self._lock:
            self._state, self._failures, self._probing = "closed", 0, False

    def record_failure(self) -> None:
        """The model failed in a way that says it is unhealthy (timeout, 429, 5xx)."""
        with self._lock:
            if self._probing or self._current() != "closed":
                self._open()
                return
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open()

    def release(self) -> None:
        """Give back a probe slot when the call ended without telling anything about the model's health."""
        with self._lock:
            self._probing = False

    def _current(self) -> BreakerState:
        if self._state == "open" and self.clock() >= self._opened_at + self.cooldown_seconds:
            self._state, self._probing = "half_open", False
        return self._state

    def _open(self) -> None:
        self._state, self._opened_at, self._probing = "open", self.clock(), False
        self._failures = 0


@dataclass
class CircuitBreakers:
    """One breaker per model id, created on first use with shared settings."""

    failure_threshold: int = 3
    cooldown_seconds: float = 30.0
    clock: Clock = time.monotonic
    _breakers: dict[str, CircuitBreaker] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self, model: str) -> CircuitBreaker:
        """The breaker of `model`."""
        with self._lock:
            breaker = self._breakers.get(model)
            if breaker is None:
                breaker = CircuitBreaker(model, self.failure_threshold, self.cooldown_seconds, self.clock)
                self._breakers[model] = breaker
            return breaker

    def states(self) -> dict[str, BreakerState]:
        """Model → state, for health endpoints and tests."""
        with self._lock:
            breakers = list(self._breakers.values())
        return {breaker.name: breaker.state for breaker in breakers}


@dataclass
class FakeClock:
    """A clock that only moves when told to."""

    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds
