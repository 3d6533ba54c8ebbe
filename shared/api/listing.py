"""Query parameters of `GET /api/v1/campaigns` and the opaque cursor that pages through it.

Pagination is keyset, not offset: the cursor names the last item shown by its `(created_at, id)`, and the
next page starts strictly after it in `created_at DESC, id DESC` order. Campaigns created meanwhile land
before the cursor, so paging on never repeats or skips one.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol, get_args
from uuid import UUID

from shared.campaigns.schemas import CampaignKind
from shared.domain import CampaignStatus
from shared.errors import InvalidRequest

CAMPAIGN_STATUSES: tuple[str, ...] = tuple(status.value for status in CampaignStatus)
CAMPAIGN_KINDS: tuple[str, ...] = get_args(CampaignKind)
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class QueryArgs(Protocol):
    """What the query string must offer (Flask's `request.args` does)."""

    def getlist(self, key: str) -> list[str]: ...


class Cursor(NamedTuple):
    """The position after which the next page starts: the last item's sort key."""

    created_at: datetime
    id: UUID

    def encode(self) -> str:
        """The opaque form clients pass back as `cursor`."""
        raw = json.dumps({"c": self.created_at.isoformat(), "i": str(self.id)}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Parse a cursor made by `encode`, or raise `InvalidRequest` naming `cursor`."""
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            created_at = datetime.fromisoformat(data["c"])
            if created_at.tzinfo is None:
                raise ValueError("naive timestamp")
            return cls(created_at, UUID(data["i"]))
        except (binascii.Error, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidRequest(
                f"`cursor` {token!r} is not a cursor this API issued; pass a page's `next_cursor` back unchanged.",
                details=_details("cursor", token)) from exc


@dataclass(frozen=True)
class CampaignQuery:
    """Validated filters and page of a campaign listing; empty `statuses`/`kinds` mean any."""

    statuses: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    limit: int = DEFAULT_LIMIT
    after: Cursor | None = None

    @classmethod
    def from_args(cls, args: QueryArgs) -> CampaignQuery:
        """Read `status`, `kind` (each repeated or comma-separated), `limit` and `cursor` from a query string.

        Every bad value is an `InvalidRequest` whose message and `details` name the field, the value and,
        for enumerations, the allowed values.
        """
        limit_raw = _single(args, "limit")
        cursor_raw = _single(args, "cursor")
        return cls(statuses=_choices(args, "status", CAMPAIGN_STATUSES),
                   kinds=_choices(args, "kind", CAMPAIGN_KINDS),
                   limit=DEFAULT_LIMIT if limit_raw is None else _limit(limit_raw),
                   after=None if cursor_raw is None else Cursor.decode(cursor_raw))


def _single(args: QueryArgs, name: str) -> str | None:
    values = args.getlist(name)
    if len(values) > 1:
        raise InvalidRequest(f"Send `{name}` at most once; got {values!r}.", details=_details(name, values))
    return values[0] if values and values[0] != "" else None


def _choices(args: QueryArgs, name: str, allowed: Sequence[str]) -> tuple[str, ...]:
    wanted: list[str] = []
    for value in (part.strip() for raw in args.getlist(name) for part in raw.split(",")):
        if not value:
            continue
        if value not in allowed:
            raise InvalidRequest(f"`{name}` {value!r} is not one of {', '.join(allowed)}.",
                                 details=_details(name, value, allowed=list(allowed)))
        if value not in wanted:
            wanted.append(value)
    return tuple(wanted)


def _limit(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_LIMIT):
        raise InvalidRequest(f"`limit` must be a whole number from 1 to {MAX_LIMIT}; got {raw!r}.",
                             details=_details("limit", raw))
    return int(raw)


def _details(name: str, value: str | list[str], **extra: Any) -> dict[str, Any]:
    return {"field": name, "value": value, **extra}
