"""Publishing: channel connections, platform adapters and exactly-once publications."""
