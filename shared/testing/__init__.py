"""Small working implementations of `shared.ports` Protocols for unit and integration tests."""
