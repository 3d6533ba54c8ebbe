"""Secrets at rest: envelope encryption (`envelope`) and the workspaces' own model and search keys (`keys`)."""
