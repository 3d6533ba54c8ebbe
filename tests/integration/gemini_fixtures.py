"""The Gemini wire emulator served on loopback, shared by the tests that drive it through google-genai."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.gemini import create_app
from infra.local.serve import RunningServer, serve_in_thread

GEMINI_CONFIG = EmulatorConfig(database_url="")


@pytest.fixture(scope="module")
def gemini_server() -> Iterator[RunningServer]:
    """One emulator per test module."""
    running = serve_in_thread(create_app(GEMINI_CONFIG))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def gemini_http(gemini_server: RunningServer) -> Iterator[httpx.Client]:
    """A client for the emulator's scripting API; scripts and the request log are cleared after each test."""
    with httpx.Client(base_url=gemini_server.url, timeout=10) as session:
        yield session
        session.delete("/_emulator/script").raise_for_status()
        session.delete("/_emulator/requests").raise_for_status()
