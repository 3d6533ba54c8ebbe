"""The deploy-time setup step: LangGraph checkpointer tables, then `supabase/migrations/`.

Run once per deploy against a direct or session-mode connection (`CREATE INDEX CONCURRENTLY`
cannot run through the transaction pooler), never at a function's cold start. On plain Postgres
(not Supabase) pass `--bootstrap` to create Supabase's roles and `auth` helpers first.
"""

from __future__ import annotations

import argparse
import os
import sys

from infra.local.stack import BOOTSTRAP_SQL
from shared.db.migrate import setup_database


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--bootstrap", action="store_true", help="Create Supabase roles/auth helpers if absent.")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("set DATABASE_URL or pass --database-url")
    applied = setup_database(args.database_url, bootstrap_sql=BOOTSTRAP_SQL if args.bootstrap else None)
    print(f"checkpointer tables ready; migrations applied now: {applied or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
