"""Fixtures for the store (placeholder until it lands)."""
