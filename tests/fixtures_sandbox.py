"""Fixtures: a fresh sandbox per test and real SDK clients pointed at it."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import types

from convostore.sandbox import Sandbox


def make_client(base_url: str) -> genai.Client:
    """A real 3.x client on the sandbox, with short SDK retry delays so fault tests stay fast."""
    return genai.Client(
        api_key="test-key",
        http_options=types.HttpOptions(
            base_url=base_url,
            retry_options=types.HttpRetryOptions(attempts=4, initial_delay=0.01, max_delay=0.05),
        ),
    )


@pytest.fixture
def sandbox():
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def client(sandbox):
    c = make_client(sandbox.base_url)
    yield c
    c.close()


@pytest.fixture
def aclient(client):
    return client.aio
