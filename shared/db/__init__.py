"""Postgres access: the connection pool, migrations and the repositories. All SQL lives in this package."""
