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


SDK1_VERSION = "1.55.0"  # the oldest release of the SDK matrix: one side venv serves both


@pytest.fixture(scope="session")
def sdk1_python() -> str:
    """A Python with the retired google-genai 1.x (``tests/sdk_venvs.py``: built once, cached).

    Fails loudly rather than skipping: both SDK generations are supported, so both are tested.
    """
    import os

    from tests.sdk_venvs import BuildError, python_for

    override = os.environ.get("CONVOSTORE_SDK1_PYTHON")
    if override:
        return override
    try:
        return python_for(SDK1_VERSION)
    except BuildError as exc:
        pytest.fail(str(exc))
