"""The production `Publisher`: the platform adapters, channel connections and asset library of this deployment.

Connections (`shared.publishing.connections`) and assets (`shared.assets`) are imported when first used,
so building a publisher opens no connection and imports no platform SDK. A deployment without encryption
keys treats every channel as not connected: its publications wait, visibly (the error names the setting).
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

from shared.db.pool import Pool, as_service
from shared.errors import ConfigurationError, MuseError
from shared.publishing.engine import NotConnected, Publisher, PublishPolicy, utc_now
from shared.publishing.ports import (
    ConnectionProvider,
    Credentials,
    Media,
    PlatformError,
    Provider,
    PublishingAdapter,
)
from shared.publishing.providers import adapter_for
from shared.queue import StepQueue, qstash_queue
from shared.security.envelope import Keyring
from shared.settings import Settings


@dataclass
class ConnectionCredentials:
    """`CredentialsSource` over `shared.publishing.connections` (decrypts, and refreshes before expiry).

    Its `ChannelNotConnected` becomes the engine's `NotConnected` (never connected, or disconnected) or a
    `reconnect` error with the platform's reason (the connection needs a reconnect). The connections
    service is built on first use over the publisher's pool and settings.
    """

    settings: Settings
    pool: Pool
    _service: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _connections(self, provider: ConnectionProvider) -> tuple[ModuleType, Any]:
        module = importlib.import_module("shared.publishing.connections")
        with self._lock:
            if self._service is None:
                try:
                    keyring = Keyring.from_settings(self.settings)
                except ConfigurationError as exc:
                    raise NotConnected(f"{provider} is not connected: {exc.message}") from exc
                self._service = module.Connections(pool=self.pool, settings=self.settings, keyring=keyring)
        return module, self._service

    def credentials_for(self, workspace_id: str, provider: ConnectionProvider) -> Credentials:
        module, service = self._connections(provider)
        try:
            credentials: Credentials = service.credentials_for(workspace_id, provider)
        except module.ChannelNotConnected as exc:
            if exc.status == "needs_reconnect":
                raise PlatformError(exc.reason or exc.message, kind="reconnect", provider=provider) from exc
            raise NotConnected(exc.message) from exc
        return credentials

    def refreshed(self, credentials: Credentials) -> Credentials | None:
        """The platform refused the token as expired although its stored expiry had not come: refresh it as
        if that expiry were now (the service's own refresh, under its row lock), once."""
        try:
            _, service = self._connections(credentials.provider)
            expired_view = replace(service, clock=lambda: datetime.now(UTC) + timedelta(days=3650))
            fresh: Credentials = expired_view.credentials_for(credentials.workspace_id, credentials.provider)
        except MuseError:
            return None
        return fresh if fresh.access_token != credentials.access_token else None

    def mark_needs_reconnect(self, connection_id: str, reason: str) -> None:
        try:
            _, service = self._connections("linkedin")
        except NotConnected:
            return
        service.mark_needs_reconnect(connection_id, reason)


@dataclass
class LibraryAssets:
    """`AssetSource` over the workspace's asset library (`shared.assets`, images in Supabase Storage), built on
    first use over the publisher's pool and settings."""

    settings: Settings
    pool: Pool
    _library: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _modules(self) -> tuple[Any, ModuleType, ModuleType]:
        library, rows = importlib.import_module("shared.assets.library"), importlib.import_module("shared.db.assets")
        with self._lock:
            if self._library is None:
                self._library = library.asset_library(self.settings, self.pool)
        return self._library, library, rows

    def pick(self, workspace_id: str, *, channel: str, text: str) -> str:
        found, _, _ = self._modules()
        return str(found.pick_or_generate(workspace_id, channel=channel, text=text).id)

    def media(self, workspace_id: str, asset_id: str) -> Media:
        found, library, rows = self._modules()
        with as_service(self.pool) as conn:
            row = rows.get_asset(conn, workspace_id, asset_id)
        if row is None:
            raise MuseError(f"Asset {asset_id} is no longer in the workspace's library.")
        media: Media = found.media(library.Asset.of(row))
        return media


def policy_from(settings: Settings) -> PublishPolicy:
    """The engine's timing from settings."""
    return PublishPolicy(max_attempts=settings.publish_max_attempts, backoff_seconds=settings.publish_backoff_seconds,
                         max_backoff_seconds=settings.publish_max_backoff_seconds,
                         call_timeout_seconds=settings.publish_call_timeout_seconds,
                         settle_seconds=settings.publish_settle_seconds)


def build_publisher(settings: Settings, pool: Pool, *, queue: StepQueue | None = None) -> Publisher:
    """The publisher of this deployment."""
    adapters: dict[Provider, PublishingAdapter] = {}

    def adapter(provider: Provider) -> PublishingAdapter:
        if provider not in adapters:
            adapters[provider] = adapter_for(provider, settings)
        return adapters[provider]

    return Publisher(pool=pool, adapters=adapter, credentials=ConnectionCredentials(settings, pool),
                     assets=LibraryAssets(settings, pool), clock=utc_now, queue=queue or qstash_queue(settings),
                     policy=policy_from(settings))
