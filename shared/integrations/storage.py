"""Supabase Storage through the official `storage3` client (the one `supabase.Client.storage` wraps).

Originals of knowledge resources are kept in a private bucket under `<workspace id>/<resource id>/`,
written and read with the server-only service-role key; users never reach the bucket directly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import httpx
from storage3 import SyncStorageClient
from storage3.exceptions import StorageApiError

from shared.errors import ConfigurationError, NotFound, UpstreamUnavailable
from shared.settings import Settings

_LIST_PAGE = 1000


def _failure(exc: StorageApiError, what: str) -> Exception:
    status = str(exc.status)
    if status in ("401", "403"):
        return ConfigurationError(f"Supabase Storage refused {what} ({status} {exc.message}); "
                                  "check SUPABASE_SERVICE_ROLE_KEY.")
    if status == "404":
        return NotFound(f"Supabase Storage has no {what} ({exc.message}).")
    return UpstreamUnavailable(f"Supabase Storage failed {what}: {status} {exc.message}")


@dataclass
class SupabaseObjectStore:
    """Objects in one private bucket, created on first use."""

    client: SyncStorageClient
    bucket: str
    _bucket_ready: bool = field(default=False, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with self._lock:
            if self._bucket_ready:
                return
            try:
                self.client.get_bucket(self.bucket)
            except StorageApiError as exc:
                if str(exc.status) not in ("400", "404"):
                    raise _failure(exc, f"bucket {self.bucket!r}") from exc
                try:
                    self.client.create_bucket(self.bucket, options={"public": False})
                except StorageApiError as create_exc:
                    if str(create_exc.status) != "409" and create_exc.code != "Duplicate":
                        raise _failure(create_exc, f"creating bucket {self.bucket!r}") from create_exc
            except httpx.HTTPError as exc:
                raise UpstreamUnavailable(f"Supabase Storage is unreachable: {exc}") from exc
            self._bucket_ready = True

    def put(self, path: str, data: bytes, *, content_type: str) -> None:
        """Store `data` at `path` (replacing any object there)."""
        self._ensure_bucket()
        try:
            self.client.from_(self.bucket).upload(path, data, {"content-type": content_type, "upsert": "true"})
        except StorageApiError as exc:
            raise _failure(exc, f"upload of {path!r}") from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"Supabase Storage is unreachable uploading {path!r}: {exc}") from exc

    def get(self, path: str) -> bytes:
        """The bytes at `path`; `NotFound` if there are none."""
        try:
            return self.client.from_(self.bucket).download(path)
        except StorageApiError as exc:
            raise _failure(exc, f"object {path!r} in bucket {self.bucket!r}") from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"Supabase Storage is unreachable downloading {path!r}: {exc}") from exc

    def signed_url(self, path: str, *, expires_in: int) -> str:
        """A URL anyone may fetch the object at for `expires_in` seconds (how platforms fetch post media)."""
        try:
            signed = self.client.from_(self.bucket).create_signed_url(path, expires_in)
        except StorageApiError as exc:
            raise _failure(exc, f"signed URL for {path!r}") from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"Supabase Storage is unreachable signing {path!r}: {exc}") from exc
        if not signed.get("signedURL"):
            raise UpstreamUnavailable(f"Supabase Storage returned no signed URL for {path!r}.")
        return str(signed["signedURL"])

    def list_under(self, folder: str) -> list[str]:
        """Every object path under `folder` (`<workspace id>/`, `<workspace id>/<resource id>/`), sub-folders included.

        An absent bucket holds nothing. Raises `UpstreamUnavailable` when Storage fails, so a caller that
        must not miss an object (export, erasure) never mistakes a failure for an empty folder.
        """
        found: list[str] = []
        pending = [folder.strip("/")]
        while pending:
            prefix = pending.pop()
            offset = 0
            while True:
                try:
                    entries = self.client.from_(self.bucket).list(prefix, {"limit": _LIST_PAGE, "offset": offset})
                except StorageApiError as exc:
                    if "bucket not found" in str(exc.message).lower():
                        return []
                    raise UpstreamUnavailable(f"Supabase Storage failed listing {prefix!r}: "
                                              f"{exc.status} {exc.message}") from exc
                except httpx.HTTPError as exc:
                    raise UpstreamUnavailable(f"Supabase Storage is unreachable listing {prefix!r}: {exc}") from exc
                for entry in entries:
                    path = f"{prefix}/{entry['name']}" if prefix else str(entry["name"])
                    (found if entry.get("id") else pending).append(path)
                if len(entries) < _LIST_PAGE:
                    break
                offset += _LIST_PAGE
        return sorted(found)

    def remove_under(self, folder: str) -> int:
        """Delete every object under `folder`; how many there were. Idempotent: run it again to finish a failed one.

        Unlike `remove`, failures raise (`UpstreamUnavailable`): erasing data must not pass silently.
        """
        paths = self.list_under(folder)
        for start in range(0, len(paths), _LIST_PAGE):
            batch = paths[start:start + _LIST_PAGE]
            try:
                self.client.from_(self.bucket).remove(batch)
            except StorageApiError as exc:
                raise UpstreamUnavailable(f"Supabase Storage failed removing objects under {folder!r}: "
                                          f"{exc.status} {exc.message}") from exc
            except httpx.HTTPError as exc:
                raise UpstreamUnavailable(f"Supabase Storage is unreachable removing under {folder!r}: {exc}") from exc
        return len(paths)

    def remove(self, paths: list[str]) -> None:
        """Delete objects (best effort for cleanup: missing ones are ignored)."""
        try:
            self.client.from_(self.bucket).remove(paths)
        except (StorageApiError, httpx.HTTPError):
            pass


def supabase_object_store(settings: Settings, bucket: str | None = None) -> SupabaseObjectStore:
    """A private bucket (the knowledge bucket unless `bucket` is given) at `SUPABASE_URL`, authenticated with
    `SUPABASE_SERVICE_ROLE_KEY`."""
    if settings.supabase_service_role_key is None or not settings.supabase_service_role_key.get_secret_value():
        raise ConfigurationError("SUPABASE_SERVICE_ROLE_KEY is not set; knowledge originals are stored in "
                                 "Supabase Storage with the project's service-role (secret) key.")
    key = settings.supabase_service_role_key.get_secret_value()
    headers = {"apiKey": key, "Authorization": f"Bearer {key}"}
    http = httpx.Client(headers=headers, timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True)
    client = SyncStorageClient(settings.supabase_url.rstrip("/") + "/storage/v1/", headers, http_client=http)
    return SupabaseObjectStore(client=client, bucket=bucket or settings.knowledge_bucket)
