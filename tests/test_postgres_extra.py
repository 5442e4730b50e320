"""``pip install convostore`` is enough for SQLite; PostgreSQL needs the ``postgres`` extra, and
a PostgreSQL URL without its driver says which extra to install, in one line."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Runs its arguments as `python -c` code with psycopg unimportable, as on a SQLite-only install.
NO_PSYCOPG = "import sys; sys.modules['psycopg'] = None; sys.modules['psycopg2'] = None\n"


def run_without_psycopg(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("CONVOSTORE_DB", None)
    return subprocess.run([sys.executable, "-c", NO_PSYCOPG + code], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)


def test_psycopg_is_an_extra_not_a_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("psycopg")]
    extras = project["optional-dependencies"]
    assert [d for d in extras["postgres"] if d.startswith("psycopg")]
    assert [d for d in extras["test"] if d.startswith("psycopg")]  # the suite runs the PostgreSQL tests


def test_sqlite_records_and_lists_without_psycopg(tmp_path, sandbox):
    proc = run_without_psycopg(f"""
import convostore
from google import genai
from google.genai import types
from click.testing import CliRunner
from convostore.cli import cli
store = convostore.Store("archive.db")
client = convostore.record(genai.Client(api_key="k", http_options=types.HttpOptions(base_url={sandbox.base_url!r})), store=store)
client.interactions.create(model="gemini-2.5-flash", input="Hi, my name is Ada.")
store.close()
res = CliRunner().invoke(cli, ["--db", "archive.db", "list"])
assert res.exit_code == 0 and "Ada" in res.output, res.output
print("ok")
""", tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_a_postgresql_url_without_the_driver_names_the_extra(tmp_path):
    proc = run_without_psycopg("""
import convostore
from convostore.errors import StoreError
try:
    convostore.Store("postgresql://postgres@127.0.0.1:5432/test")
except StoreError as exc:
    print(exc)
""", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pip install 'convostore[postgres]'" in proc.stdout and len(proc.stdout.strip().splitlines()) == 1

    cli = run_without_psycopg("""
from convostore.cli import main
sys.argv = ["convostore", "--db", "postgresql://postgres@127.0.0.1:5432/test", "list"]
main()
""", tmp_path)
    assert cli.returncode == 1
    assert "Traceback" not in cli.stderr
    lines = cli.stderr.strip().splitlines()
    assert len(lines) == 1 and "convostore[postgres]" in lines[0] and lines[0].startswith("Error"), cli.stderr
