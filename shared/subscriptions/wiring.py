"""The `subscriptions` service of a deployment, built once per instance."""

from __future__ import annotations

from functools import cache

from shared.db.pool import Pool, create_pool
from shared.integrations.cache import upstash_cache
from shared.integrations.phonepe_subscriptions import phonepe_subscriptions_client
from shared.queue import qstash_queue, qstash_receiver
from shared.settings import Settings, get_settings
from shared.subscriptions.lifecycle import SubscriptionService, subscription_outbox


def build_subscription_service(settings: Settings, *, pool: Pool | None = None) -> SubscriptionService:
    """The service wired from settings: PhonePe (token cached in Upstash), QStash, Postgres."""
    pool = pool or create_pool(settings.database_url, max_size=2)
    return SubscriptionService(settings=settings, pool=pool,
                               phonepe=phonepe_subscriptions_client(settings, upstash_cache(settings)),
                               outbox=subscription_outbox(pool, qstash_queue(settings)),
                               receiver=qstash_receiver(settings))


@cache
def subscription_service() -> SubscriptionService:
    """This instance's service (built on first use, reused while the instance is warm)."""
    return build_subscription_service(get_settings())
