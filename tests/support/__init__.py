"""Test-only helpers: local stand-ins for external services (push providers) and test keys."""
