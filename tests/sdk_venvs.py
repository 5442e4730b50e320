"""Side virtualenvs, one per google-genai release the project supports, for the SDK matrix.

Each is built once (``python -m venv`` + pip, the missing ones in parallel) and cached
under ``~/.cache/convostore/sdk-venv-<version>``; a ``.ready`` marker is written last, so
an interrupted build is redone. Tests put the checkout on ``PYTHONPATH``, so a side venv
holds only the SDK and convostore's runtime dependencies. The version already installed
with the suite's own interpreter is used in place, without a venv.

    python -m tests.sdk_venvs            # build (or check) them all, print the pythons
    python -m tests.sdk_venvs 2.0.0 3.0.0  # just these
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

#: The tested range: the oldest and newest release of each SDK generation.
SDK_VERSIONS = ("1.55.0", "1.75.0", "2.0.0", "2.34.0", "3.0.0", "3.6.1")
#: convostore's runtime dependencies, less the PostgreSQL driver (the contract uses SQLite).
SIDE_DEPS = ("sqlmodel", "sqlalchemy", "orjson", "alembic", "click", "platformdirs")


class BuildError(RuntimeError):
    """A side virtualenv could not be built (no network, a release withdrawn, ...)."""


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convostore"


def _installed_version() -> str | None:
    try:
        from google import genai

        return str(genai.__version__)
    except Exception:  # noqa: BLE001 - no SDK in this interpreter
        return None


def python_for(version: str) -> str:
    """A Python with ``google-genai==version`` and convostore's dependencies, built if missing."""
    if _installed_version() == version:
        return sys.executable
    venv = cache_root() / f"sdk-venv-{version}"
    python = venv / "bin" / "python"
    marker = venv / ".ready"
    if marker.exists():
        return str(python)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".sdk-venv-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest process may be building it
        if marker.exists():
            return str(python)
        try:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True, timeout=300)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                 f"google-genai=={version}", *SIDE_DEPS],
                check=True, capture_output=True, text=True, timeout=900,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            detail = getattr(exc, "stderr", "") or ""
            if isinstance(detail, bytes):
                detail = detail.decode("utf-8", "replace")
            raise BuildError(f"could not build the google-genai {version} virtualenv at {venv}: {exc}\n{detail[-2000:]}") from exc
        marker.write_text(version)
    return str(python)


def build_all(versions: tuple[str, ...] = SDK_VERSIONS) -> dict[str, str]:
    """Every version's Python; missing venvs are built concurrently (pip waits on I/O)."""
    with ThreadPoolExecutor(max_workers=len(versions)) as pool:
        return dict(zip(versions, pool.map(python_for, versions)))


if __name__ == "__main__":  # pragma: no cover
    start = time.perf_counter()
    for v, py in build_all(tuple(sys.argv[1:]) or SDK_VERSIONS).items():
        print(f"{v}\t{py}")
    print(f"ready in {time.perf_counter() - start:.1f} s", file=sys.stderr)
