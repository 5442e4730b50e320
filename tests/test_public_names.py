"""The package's documented names stay the documented callables, whatever was imported first.

A submodule import binds the submodule as an attribute of its package; a submodule named
like a public function (the old ``convostore/history.py``) replaced ``convostore.history``
the moment anything imported it, and the README's own snippet crashed.
"""

from __future__ import annotations

import importlib
import pkgutil
import types
from datetime import datetime, timezone

import convostore
from tests.fixtures_sandbox import make_client


def _import_every_submodule() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(convostore.__path__, "convostore."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue  # running it is the CLI itself
        importlib.import_module(info.name)
        names.append(info.name)
    return names


def test_public_names_are_callables_after_every_submodule_is_imported(tmp_path, sandbox):
    imported = _import_every_submodule()
    assert "convostore.recorder" in imported and "convostore.cli" in imported
    for name in convostore.__all__:
        value = getattr(convostore, name)
        assert not isinstance(value, types.ModuleType), f"convostore.{name} is a module, not the documented callable"

    store = convostore.Store(tmp_path / "chats.db")
    client = convostore.record(make_client(sandbox.base_url), store=store)
    try:
        with convostore.annotate(labels={"suite": "names"}):
            t1 = client.interactions.create(model="gemini-2.5-flash", input="Hi, I'm Ada.", store=False)
        t2 = client.interactions.create(model="gemini-2.5-flash", input="My name?", store=False, previous_interaction_id=t1.id)
        history = convostore.history(store, t2.id)
        assert len(history.create_kwargs()["input"]) >= 3
        run = convostore.replay(store, t2.id, model="gemini-2.5-pro", mode="forced", client=client)
        assert run.id
        comparison = convostore.compare(store, t2.id)
        assert comparison.to_json()
        assert t2.id in convostore.delete(store, t2.id, dry_run=True).ids
        assert convostore.purge(store, datetime(2000, 1, 1, tzinfo=timezone.utc), dry_run=True).ids == []
    finally:
        client.close()
        store.close()
