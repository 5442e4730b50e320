"""The Python in README.md and docs/, and every script in examples/, runs as written.

Each document's ```python blocks run in order in one namespace (as a reader pastes them),
with the SDK pointed at the sandbox through the environment a user would set
(``GOOGLE_GEMINI_BASE_URL``, ``GEMINI_API_KEY``), in a temporary working directory and
data directory. A block right after ``<!-- no-run -->`` is skipped (say why beside it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, code) of each ```python block not marked <!-- no-run -->."""
    text = path.read_text(encoding="utf-8")
    found = []
    for match in _BLOCK.finditer(text):
        before = text[: match.start()].rstrip().splitlines()[-1:] or [""]
        if "<!-- no-run" in before[0]:
            continue
        found.append((text.count("\n", 0, match.start()) + 2, match.group(1)))
    return found


@pytest.fixture
def user_env(sandbox, tmp_path, monkeypatch):
    """A user's shell pointed at the sandbox: a key, a base URL, fresh data and working directories."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GEMINI_API_KEY", "sandbox")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    for var in ("GOOGLE_API_KEY", "CONVOSTORE_DB", "CONVOSTORE_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_the_readme_has_python_to_run():
    assert len(python_blocks(ROOT / "README.md")) >= 2


@pytest.mark.parametrize("path", DOCUMENTS, ids=[p.relative_to(ROOT).as_posix() for p in DOCUMENTS])
def test_python_blocks_run(path, user_env, sandbox):
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for line, code in python_blocks(path):
        exec(compile(code, f"{path.name}:{line}", "exec"), namespace)  # noqa: S102 - the docs are ours
    if python_blocks(path):
        assert sandbox.requests, f"{path.name}'s Python never reached the API"
        assert (user_env / "data").exists() or any(user_env.glob("*.db")), "nothing was archived"


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_scripts_run(script, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "CONVOSTORE_DB", "GOOGLE_GEMINI_BASE_URL")}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_every_environment_variable_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Environment variables" in readme
    table = readme.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    used = {"GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL"}
    for folder in ("convostore", "tests", "examples", "bench", ".ci"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", "") and "__pycache__" not in path.parts:
                used |= set(re.findall(r"\bCONVOSTORE_[A-Z0-9_]+", path.read_text(encoding="utf-8", errors="replace")))
    missing = sorted(name for name in used if f"`{name}`" not in table)
    assert not missing, f"README's environment table lacks {missing}"
