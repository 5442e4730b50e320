"""Fixtures: the convostore pytest plugin's sandbox, and real SDK clients pointed at it.

The plugin (``convostore/pytest_plugin.py``, entry point ``pytest11``) is what users get;
these names are the suite's own short aliases over it.
"""

from __future__ import annotations

import pytest

# The plugin's fixtures, imported too so a virtualenv installed before the entry point
# existed still finds them (the entry point registers the same functions).
from convostore.pytest_plugin import (  # noqa: F401
    convostore_client,
    convostore_sandbox,
    convostore_store,
    sandbox_client as make_client,
)


@pytest.fixture
def sandbox(convostore_sandbox):
    return convostore_sandbox


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
