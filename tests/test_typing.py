"""The library is typed for its users: ``py.typed`` ships, ``mypy --strict`` passes on the
package, and a recorded client keeps the SDK client's type."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.sdk_venvs import cache_root

pytestmark = pytest.mark.timeout(600)  # a cold mypy cache (a fresh machine) takes a minute or two

ROOT = Path(__file__).resolve().parents[1]

USER_CODE = '''
from google import genai

import convostore

store = convostore.Store("archive.db")
client = convostore.record(genai.Client(api_key="k"), store=store)
reveal_type(client)
answer: str | None = client.interactions.create(model="gemini-2.5-flash", input="Hi").id
'''


def mypy(*args: str, cwd: Path, cache: str) -> subprocess.CompletedProcess[str]:
    """mypy with its cache kept between runs (~/.cache/convostore/mypy-*): warm runs take seconds."""
    return subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(cache_root() / f"mypy-{cache}"), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


def test_the_package_passes_mypy_strict():
    proc = mypy("--strict", "-p", "convostore", cwd=ROOT, cache="package")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]


def test_a_users_recorded_client_keeps_its_type(tmp_path):
    (tmp_path / "app.py").write_text(USER_CODE)
    proc = mypy("--strict", "app.py", cwd=tmp_path, cache="user")  # the installed package, as a user sees it
    assert proc.returncode == 0, proc.stdout
    assert 'Revealed type is "google.genai.client.Client"' in proc.stdout


def test_py_typed_ships_in_the_package():
    assert (ROOT / "convostore" / "py.typed").is_file()
    import tomllib

    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["packages"] == ["convostore"]  # the whole package directory, py.typed included
