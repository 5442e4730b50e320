"""The top-level names the README calls stay callable, whatever was imported first."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("first", ["compare", "replay", "history", "record", "Store"])
def test_top_level_functions_stay_functions_after_any_import_order(first):
    code = (
        "import convostore, types\n"
        f"convostore.{first}\n"
        "import convostore.compare, convostore.replay, convostore.history\n"
        "bad = [n for n in ('history', 'replay', 'compare', 'record') if isinstance(getattr(convostore, n), types.ModuleType)]\n"
        "assert not bad, bad\n"
        "from convostore.history import history\n"
        "assert convostore.history is history\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
