"""Clients of external services, each behind a Protocol of `shared.ports`."""
