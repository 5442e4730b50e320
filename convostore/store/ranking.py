"""Search order at scale: newest first off the index, relevance over a bounded set.

Ranking every match before the limit (FTS5 ``ORDER BY rank``, PostgreSQL ``ts_rank``)
costs time in proportion to the matches: 0.76 s / 3.8 s for a word in every row of a
million. Newest first needs no ranking (FTS5 walks its doclist from the top rowid down;
PostgreSQL walks the ``recorded_at`` index). Relevance ranks at most ``CANDIDATES``
matches: exact when a query matches fewer rows than that; for a common word, the best
of its newest matches on SQLite, of the first found on PostgreSQL (``pg_ids``).
"""

from __future__ import annotations

import math
import re
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

#: How many of the newest matches relevance ranks (a bound on its cost).
CANDIDATES = 1000
#: PostgreSQL: the stored, generated tsvector column the GIN index ``ix_interaction_search``
#: is built on (schema 0001). Kept through 0008: computing it per candidate from the text
#: made a common word's search 10x slower.
PG_VECTOR = "search_vector"
_K1, _B = 1.2, 0.75
_WORD = re.compile(r"\w+")


def _match(words: list[str]) -> str:
    """User words as an FTS5 query: each one quoted (never FTS syntax), all required."""
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


def _newest(conn: Connection, match: str, k: int) -> list[int]:
    sql = "SELECT rowid FROM interaction_fts WHERE interaction_fts MATCH ? ORDER BY rowid DESC LIMIT ?"
    return [r[0] for r in conn.exec_driver_sql(sql, (match, k))]


def sqlite_rowids(conn: Connection, words: list[str], *, limit: int, newest: bool) -> list[int]:
    """The rowids of the first ``limit`` matches, in order (SQLite FTS5)."""
    match = _match(words)
    if newest:
        return _newest(conn, match, limit)
    candidates = _newest(conn, match, CANDIDATES + 1)
    if len(candidates) <= CANDIDATES:
        # Few matches: FTS5's own BM25 over all of them, exact.
        sql = "SELECT rowid FROM interaction_fts WHERE interaction_fts MATCH ? ORDER BY rank, rowid DESC LIMIT ?"
        return [r[0] for r in conn.exec_driver_sql(sql, (match, limit))]
    return _bm25(conn, words, candidates[:CANDIDATES], limit)


def _bm25(conn: Connection, words: list[str], rowids: list[int], limit: int) -> list[int]:
    """BM25 over the candidates, in Python: FTS5's bm25() would first count every match
    of each word in the whole index (the cost being avoided). Document frequencies are
    estimated from how far down the rowids each word's newest CANDIDATES matches reach."""
    top = conn.exec_driver_sql("SELECT coalesce(max(rowid), 1) FROM interaction").scalar() or 1
    terms = sorted({w.lower() for w in words})
    idf = {}
    for term in terms:
        hits = _newest(conn, _match([term]), CANDIDATES)
        df = len(hits) if len(hits) < CANDIDATES else CANDIDATES * top / max(1, top - hits[-1] + 1)
        idf[term] = math.log(1 + (top - df + 0.5) / (df + 0.5))
    placeholders = ",".join("?" * len(rowids))
    docs = conn.exec_driver_sql(
        f"SELECT rowid, coalesce(input_text, '') || ' ' || coalesce(output_text, '') FROM interaction WHERE rowid IN ({placeholders})",
        tuple(rowids),
    ).all()
    # Per document only its length and the query terms' counts: list.count per term is
    # half the CPU of a Counter over every token (a search page's main cost).
    counted = []
    for rowid, body in docs:
        toks = _WORD.findall(body.lower())
        counted.append((rowid, len(toks), [(t, toks.count(t)) for t in terms]))
    avgdl = sum(n for _, n, _ in counted) / max(1, len(counted)) or 1.0
    scores = []
    for rowid, length, tfs in counted:
        norm = _K1 * (1 - _B + _B * length / avgdl)
        score = sum(idf[t] * tf * (_K1 + 1) / (tf + norm) for t, tf in tfs if tf)
        scores.append((-score, -rowid))
    scores.sort()
    return [-r for _, r in scores[:limit]]


def pg_ids(conn: Connection, words: list[str], *, limit: int, newest: bool) -> list[str]:
    """The ids of the first ``limit`` matches, in order (PostgreSQL).

    First up to ``CANDIDATES + 1`` matches in whatever order the planner finds them
    cheapest (the GIN index for a rare word, an early-stopping scan for a common one),
    ranked as they come. Fewer than that: all the matches, ordered exactly. More: newest
    first walks the ``recorded_at`` index down, stopping at the limit; relevance ranks
    the candidates found (a bounded set, as on SQLite, though not the newest ones: a
    newest-first walk that must collect a thousand matches of a 0.1% word would read
    a million rows).
    """
    params = {"q": " ".join(words), "k": CANDIDATES + 1, "limit": limit}
    q = "plainto_tsquery('simple', :q)"
    found = list(conn.execute(text(
        f"SELECT id, recorded_at, ts_rank({PG_VECTOR}, {q}) FROM interaction WHERE {PG_VECTOR} @@ {q} LIMIT :k"
    ), params).all())
    if len(found) > CANDIDATES and newest:
        return [r[0] for r in conn.execute(text(
            f"SELECT id FROM interaction WHERE {PG_VECTOR} @@ {q} ORDER BY recorded_at DESC, id DESC LIMIT :limit"
        ), params)]
    if newest:
        found.sort(key=lambda r: (r[1], r[0]), reverse=True)
    else:
        found.sort(key=lambda r: (r[2], r[1], r[0]), reverse=True)
    return [r[0] for r in found[:limit]]


def pg_rows_in_order(conn: Connection, ids: list[str], typed: Any) -> list[Any]:
    """The full rows for ``ids``, in that order."""
    from .rows import T

    cols = ", ".join(f"i.{c}" for c in T.c.keys())
    sql = text(f"SELECT {cols} FROM interaction i WHERE i.id = ANY(:ids)")
    found = {r.id: r for r in conn.execute(sql.columns(*typed), {"ids": ids}).all()}
    return [found[i] for i in ids if i in found]


def sqlite_rows_in_order(conn: Connection, rowids: list[int], typed: Any) -> list[Any]:
    """The full rows for ``rowids``, in that order."""
    from .rows import T

    cols = ", ".join(f"i.{c}" for c in T.c.keys())
    placeholders = ",".join(f":r{n}" for n in range(len(rowids)))
    sql = text(f"SELECT i.rowid AS convostore_rowid, {cols} FROM interaction i WHERE i.rowid IN ({placeholders})")
    found = {r.convostore_rowid: r for r in conn.execute(sql.columns(*typed), {f"r{n}": v for n, v in enumerate(rowids)}).all()}
    return [found[r] for r in rowids if r in found]
