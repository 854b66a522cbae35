"""Test-only helpers shared across test folders (import as ``tests.helpers``; not a conftest)."""
