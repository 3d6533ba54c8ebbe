"""Explicit context caches (`cachedContents`): create, get, list, update and delete, with expiry."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.local.emulators.gemini.text import content_texts, estimate_tokens


@dataclass
class CacheRecord:
    name: str
    model: str
    display_name: str
    text: str
    created: datetime
    updated: datetime
    expires: datetime

    @property
    def token_count(self) -> int:
        return estimate_tokens(self.text)

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "displayName": self.display_name,
            "createTime": _rfc3339(self.created),
            "updateTime": _rfc3339(self.updated),
            "expireTime": _rfc3339(self.expires),
            "usageMetadata": {"totalTokenCount": self.token_count},
        }


class Caches:
    """Explicit context caches (`cachedContents`), enough for cost accounting in tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, CacheRecord] = {}

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC)
        text = "\n".join(
            [*content_texts([body.get("systemInstruction") or {}]), *content_texts(body.get("contents"))]
        )
        record = CacheRecord(
            name=f"cachedContents/{uuid.uuid4().hex[:16]}",
            model=body.get("model") or "models/unknown",
            display_name=body.get("displayName") or "",
            text=text,
            created=now,
            updated=now,
            expires=_expiry(body, now) or now + timedelta(hours=1),
        )
        with self._lock:
            self._records[record.name] = record
        return record.public()

    def get(self, name: str) -> CacheRecord | None:
        with self._lock:
            record = self._records.get(name)
            if record and record.expires <= datetime.now(UTC):
                del self._records[name]
                return None
            return record

    def public_list(self) -> list[dict[str, Any]]:
        with self._lock:
            names = list(self._records)
        return [record.public() for name in names if (record := self.get(name))]

    def update(self, name: str, body: dict[str, Any]) -> CacheRecord | None:
        record = self.get(name)
        if record:
            now = datetime.now(UTC)
            record.expires = _expiry(body, now) or record.expires
            record.updated = now
        return record

    def delete(self, name: str) -> bool:
        with self._lock:
            return self._records.pop(name, None) is not None


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _expiry(body: dict[str, Any], now: datetime) -> datetime | None:
    if body.get("expireTime"):
        return datetime.fromisoformat(str(body["expireTime"]).replace("Z", "+00:00"))
    if body.get("ttl"):
        return now + timedelta(seconds=float(str(body["ttl"]).rstrip("s")))
    return None
