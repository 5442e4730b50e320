"""Fixtures for the sandbox (placeholder until it lands)."""
