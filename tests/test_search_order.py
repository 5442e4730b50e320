"""Search order at scale (issue 12): newest first off the index; relevance ranks a
bounded set of the newest matches, exactly when a query matches fewer rows than that."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from click.testing import CliRunner

from convostore.cli import cli
from convostore.records import row_from_exchange
from convostore.store import ranking

BASE = datetime(2026, 11, 1, tzinfo=timezone.utc)


def _save(store, n: int, text: str) -> str:
    iid = f"s{n:03d}"
    store.save(row_from_exchange({"model": "m", "input": text}, {"id": iid, "status": "completed"}, api_version="v1",
                                 recorded_at=BASE + timedelta(minutes=n)))
    return iid


def test_newest_first_lists_the_latest_matches(store):
    ids = [_save(store, n, f"budget review number {n}" if n % 2 else "nothing here") for n in range(12)]
    got = [r.id for r in store.search("budget", limit=3, order="newest")]
    assert got == [ids[11], ids[9], ids[7]]


def test_relevance_is_exact_below_the_bound(store):
    _save(store, 0, "budget budget budget forecast")
    _save(store, 1, "a budget line in a long message about many other things entirely")
    _save(store, 2, "unrelated")
    assert [r.id for r in store.search("budget")] == ["s000", "s001"]


def test_common_words_rank_a_bounded_set_and_newest_stays_exact(store, monkeypatch):
    monkeypatch.setattr(ranking, "CANDIDATES", 4)
    _save(store, 0, "risk risk risk risk risk")  # the best match, but older than the 4 newest
    for n in range(1, 7):
        _save(store, n, "risk " * (2 if n == 4 else 1) + "and other words")
    got = store.search("risk", limit=3)
    assert len(got) == 3 and all("risk" in r.input_text for r in got)
    counts = [r.input_text.count("risk") for r in got]
    assert counts == sorted(counts, reverse=True)  # ranked within the bounded set
    if store.dialect == "sqlite":  # the newest four are the candidates
        assert got[0].id == "s004" and {r.id for r in got} <= {"s003", "s004", "s005", "s006"}
    assert [r.id for r in store.search("risk", limit=3, order="newest")] == ["s006", "s005", "s004"]


def test_cli_search_newest(tmp_path):
    from convostore.store import Store

    db = tmp_path / "s.db"
    with Store(db) as store:
        for n in range(3):
            _save(store, n, f"pricing {'pricing ' * (3 - n)}")
    runner = CliRunner()
    out = runner.invoke(cli, ["--db", str(db), "search", "pricing", "--newest", "-n", "2"])
    assert out.exit_code == 0, out.output
    assert [line.split()[0] for line in out.stdout.splitlines()] == ["s002", "s001"]
    out = runner.invoke(cli, ["--db", str(db), "search", "pricing", "-n", "1"])
    assert [line.split()[0] for line in out.stdout.splitlines()] == ["s000"]
