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


SDK1_VERSION = "1.56.0"
SDK1_DEPS = ["sqlmodel", "sqlalchemy", "orjson", "alembic", "click", "platformdirs", "psycopg[binary]"]


@pytest.fixture(scope="session")
def sdk1_python() -> str:
    """A Python with the retired google-genai 1.x and convostore's dependencies.

    Built once (``python -m venv`` + pip) and cached under ~/.cache/convostore, so a
    fresh machine makes its own; tests put the checkout on PYTHONPATH. Fails loudly
    rather than skipping: both SDK generations are supported, so both are tested.
    """
    import os
    import subprocess
    import sys
    from pathlib import Path

    override = os.environ.get("CONVOSTORE_SDK1_PYTHON")
    if override:
        return override
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "convostore" / f"sdk1-venv-{SDK1_VERSION}"
    python = cache / "bin" / "python"
    marker = cache / ".ready"
    if not marker.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(cache)], check=True, capture_output=True, timeout=300)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"google-genai=={SDK1_VERSION}", *SDK1_DEPS],
                check=True, capture_output=True, text=True, timeout=600,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            detail = getattr(exc, "stderr", "") or ""
            pytest.fail(f"could not build the google-genai {SDK1_VERSION} virtualenv at {cache}: {exc}\n{detail[-2000:]}")
        marker.write_text(SDK1_VERSION)
    return str(python)
