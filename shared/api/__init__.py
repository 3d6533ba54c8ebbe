"""The frontend's HTTP API: campaigns, decisions, checkout, events, OpenAPI."""
