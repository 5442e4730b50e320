"""Shared fixtures. Each concern keeps its fixtures in its own plugin module."""

pytest_plugins = [
    "tests.fixtures_sandbox",
    "tests.fixtures_store",
]
