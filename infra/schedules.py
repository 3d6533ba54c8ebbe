"""The deploy-time step that creates Muse's QStash schedules (idempotent: upserted by schedule id).

Today one schedule: the sweeper, every minute (`shared.runtime.sweeper`). Run after the services are
deployed, with the same settings the functions get (`QSTASH_TOKEN`, `QSTASH_URL`, `MUSE_FUNCTION_URLS`):
`python -m infra.schedules`; `--dry-run` prints what it would create.
"""

from __future__ import annotations

import argparse
import json
import sys

from qstash import QStash

from shared.runtime.sweeper import SCHEDULE_ID, SWEEP_CRON, ensure_schedule
from shared.settings import Settings, get_settings


def planned(settings: Settings) -> list[dict[str, str]]:
    """The schedules this deployment needs."""
    return [{"schedule_id": SCHEDULE_ID, "destination": settings.function_url("sweeper"), "cron": SWEEP_CRON}]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="print the planned schedules as JSON, call nothing")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.dry_run:
        print(json.dumps({"schedules": planned(settings)}, indent=1))
        return 0
    client = QStash(settings.qstash_token.get_secret_value(), base_url=settings.qstash_url)
    print(json.dumps({"schedule_id": ensure_schedule(settings, client)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
