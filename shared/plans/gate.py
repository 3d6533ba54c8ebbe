"""Where plans are enforced: the API edge (requests per minute) and a campaign's creation (credits, starts).

`PlanGate.limit_api_requests` runs before every authenticated API operation: it finds the workspace
the request acts in (as the operation will: `X-Workspace-Id`, else the token's, else the caller's only
one) and its tier, reused for `MUSE_PLAN_CACHE_SECONDS` per caller, and counts the request. A request
the gate cannot place (no or bad token, an unknown workspace) is left to the operation, which refuses
it with the right 4xx. `PlanGate.admit_campaign_start` runs in the transaction that creates a campaign,
so a refused start leaves no campaign behind and an idempotent retry of a created one is never counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.auth import Principal, choose_workspace
from shared.db import plans as db
from shared.db.pool import Conn, Pool, as_user
from shared.errors import MuseError
from shared.plans.account import PlanState, ensure_credits, plan_state
from shared.plans.limiter import RateLimiter, Verdict
from shared.plans.tiers import Tier, tier
from shared.settings import Settings

log = logging.getLogger("muse.plans.gate")
_CACHE_ENTRIES = 4096


@dataclass
class PlanGate:
    """The plan checks of one instance."""

    pool: Pool
    settings: Settings
    limiter: RateLimiter
    clock: Callable[[], float] = time.monotonic
    _placed: dict[tuple[str, str | None, str | None], tuple[float, str, Tier]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def place(self, principal: Principal, requested: str | None) -> tuple[str, Tier]:
        """(workspace id, tier) of a request, as the operation will choose the workspace; `MuseError` if none."""
        key = (str(principal.user_id), requested, principal.requested_workspace)
        now = self.clock()
        cached = self._placed.get(key)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        with as_user(self.pool, principal.claims) as conn:
            plans = db.member_plans(conn)
        workspace_id = choose_workspace([w for w, _ in plans], principal, requested)
        stored = dict(plans).get(workspace_id)
        placed = tier(stored or self.settings.plan_default_tier)
        with self._lock:
            if len(self._placed) >= _CACHE_ENTRIES:
                self._placed.clear()
            self._placed[key] = (now + self.settings.plan_cache_seconds, workspace_id, placed)
        return workspace_id, placed

    def limit_api_requests(self, principal: Principal, requested: str | None) -> Verdict | None:
        """Count one API request of the caller's workspace; `QuotaExceeded` (429) over its tier's rate.

        None when the request cannot be placed in a workspace (the operation refuses it itself).
        """
        try:
            workspace_id, placed = self.place(principal, requested)
        except MuseError:
            return None
        except Exception as exc:  # the gate never takes the API down: the operation meets the same fault itself
            log.warning("plan gate could not place the request, not rate limited: %s: %s", type(exc).__name__, exc)
            return None
        return self.limiter.enforce("api_requests_per_minute", workspace_id, placed)

    def admit_campaign_start(self, conn: Conn, workspace_id: str) -> PlanState:
        """In the creating transaction: refuse when the period's credits are used up or today's starts are."""
        state = plan_state(conn, workspace_id, default_tier=self.settings.plan_default_tier)
        ensure_credits(state)
        self.limiter.enforce("campaign_starts_per_day", workspace_id, state.tier)
        return state
