"""Where the archive lives and how it is opened: URL resolution, engine set-up, migrations.

SQLite: WAL (readers never block the writer), a busy timeout (30 s, a setting), foreign keys on,
``synchronous=NORMAL`` (durable across a process crash), ``BEGIN IMMEDIATE`` for every
transaction (no deadlocking read-to-write upgrades between processes), and a new file
created with mode 0600 (in a 0700 directory when convostore creates it): it holds whole
conversations. PostgreSQL through psycopg 3, the ``postgres`` extra, with every wait
bounded: connect, statement and lock timeouts, TCP keepalives.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ..errors import StoreError
from ..private import make_private_dirs, tighten_dir

#: The newest migration. A test checks it against migrations/versions.
SCHEMA_HEAD = "0008"


#: Page size of new SQLite files.
PAGE_SIZE = 8192

#: Execution option marking a read-only connection (see ``create``'s begin handler).
READ_OPTION = "convostore_read"


def default_path() -> Path:
    """``$CONVOSTORE_DB`` if set, else ``convostore.db`` in the user data directory (XDG)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("convostore", appauthor=False)) / "convostore.db"


_NO_ARCHIVE = "keeps nothing: every row written to it is gone when the process ends; give a file path (archive.db) or sqlite:////absolute/path.db"


def refuse_memory(url: str) -> None:
    """Refuse a SQLite URL that names no file (``sqlite://``, ``sqlite:///``, ``:memory:``).

    Why: an archive that vanishes with the process is data loss that looks like success
    (``import`` would print "imported 6" and keep none of them).
    """
    if not url.startswith("sqlite"):
        return
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # create() reports a malformed URL
    database = parsed.database or ""
    memory = (
        database in ("", ":memory:")
        or database.startswith("file::memory:")
        or parsed.query.get("mode") == "memory"
    )
    if memory:
        what = "names no file" if not database else "is an in-memory database"
        raise StoreError(f"{url!r} {what}: an in-memory archive {_NO_ARCHIVE}")


def resolve_url(url: str | os.PathLike[str] | None) -> str:
    """A SQLAlchemy URL from a URL, a file path, ``$CONVOSTORE_DB`` or the default.

    A URL or path naming an in-memory SQLite database is refused (``StoreError``).
    """
    if url is None:
        url = os.environ.get("CONVOSTORE_DB") or default_path()
    url = os.fspath(url)
    if "://" not in url:
        if url.strip() in ("", ":memory:") or url.startswith("file::memory:"):
            raise StoreError(f"{url!r} is not a file path: an in-memory archive {_NO_ARCHIVE}")
        try:
            path = Path(url).expanduser()
        except RuntimeError as exc:  # ~user that does not exist
            raise StoreError(f"cannot expand {url!r}: {exc} (give an absolute path)") from None
        return f"sqlite:///{path.resolve()}"
    refuse_memory(url)
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - parses the port: '[::1:5432' fails here, not deep in the driver
    except (ValueError, ArgumentError) as exc:
        raise StoreError(f"not a database URL: {_masked(url)!r} ({exc}); use a file path, sqlite:///PATH or postgresql://user@host/db") from None
    return url


def _masked(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"


def archive_path(url: str | os.PathLike[str] | None) -> Path | None:
    """The SQLite file an archive URL or path names, or None (a server database, or ``:memory:``)."""
    resolved = resolve_url(url)
    return _sqlite_file(resolved) if resolved.startswith("sqlite") else None


def require_archive(url: str | os.PathLike[str] | None) -> None:
    """Refuse a SQLite path where no archive exists, so reading never creates one.

    Only commands that record, import, upgrade or run the demo create an archive; a
    mistyped path for anything else is an error, not a new empty archive.
    """
    path = archive_path(url)
    if path is not None and (not path.exists() or path.stat().st_size == 0):
        raise StoreError(f"no archive at {path} (recording, `convostore import` or `convostore db upgrade` creates one)")


def _sqlite_file(url: str) -> Path | None:
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


#: Seconds a SQLite write waits for another writer's lock (``busy_timeout``).
BUSY_TIMEOUT = 30.0
#: PostgreSQL bounds, in seconds: connecting, one statement, waiting for a lock, and TCP
#: keepalives (idle before the first probe, between probes; 3 unanswered probes end it).
PG_CONNECT_TIMEOUT = 5
PG_STATEMENT_TIMEOUT = 120
PG_LOCK_TIMEOUT = 30
PG_KEEPALIVES = (10, 5, 3)


def busy_timeout(value: float | None = None) -> float:
    """The SQLite busy timeout in seconds: ``value``, else ``$CONVOSTORE_BUSY_TIMEOUT``, else 30."""
    if value is None:
        raw = os.environ.get("CONVOSTORE_BUSY_TIMEOUT")
        if not raw:
            return BUSY_TIMEOUT
        try:
            value = float(raw)
        except ValueError:
            raise StoreError(f"CONVOSTORE_BUSY_TIMEOUT must be a number of seconds, not {raw!r}") from None
    if not value >= 0:
        raise StoreError(f"the busy timeout must be 0 or more seconds, not {value!r}")
    return float(value)


def pg_connect_args(url: str) -> dict[str, Any]:
    """libpq options that bound every wait on a PostgreSQL server (see the constants above).

    What the URL itself sets wins; its ``options`` (say, a ``search_path``) are kept and
    the timeouts appended after them.
    """
    idle, interval, count = PG_KEEPALIVES
    query = make_url(url).query
    timeouts = f"-c statement_timeout={PG_STATEMENT_TIMEOUT * 1000} -c lock_timeout={PG_LOCK_TIMEOUT * 1000}"
    given = query.get("options")
    if isinstance(given, tuple):
        given = " ".join(given)
    args = {
        "connect_timeout": PG_CONNECT_TIMEOUT,
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": interval,
        "keepalives_count": count,
        "tcp_user_timeout": (idle + interval * count) * 1000,
        "options": f"{given} {timeouts}" if given else timeouts,
    }
    return {k: v for k, v in args.items() if k == "options" or k not in query}


def create(url: str, *, busy: float | None = None, pooled: bool = True) -> Engine:
    """An engine with the pragmas and transaction mode convostore relies on.

    ``busy``: the SQLite busy timeout in seconds (default: ``busy_timeout()``).
    ``pooled=False``: every connect is a fresh connection (the background writer's).
    """
    from sqlalchemy.pool import NullPool

    pool: dict[str, Any] = {} if pooled else {"poolclass": NullPool}
    if url.startswith("sqlite"):
        refuse_memory(url)
        path = _sqlite_file(url)
        if path is not None:
            try:
                make_private_dirs(path.parent)  # new directories 0700
                if path.parent == default_path().parent:
                    tighten_dir(path.parent)  # the default data directory: 0700 even if made before
                if not path.exists():
                    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise StoreError(f"cannot create database {path}: {exc.strerror}") from exc
        wait = busy_timeout(busy)
        engine = create_engine(url, connect_args={"timeout": wait, "check_same_thread": False}, **pool)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
            # A new file gets 8 KiB pages (a no-op on an existing one): rows of a few KB of
            # raw and normalized JSON pack better, imports run 10-20% faster and files are
            # ~18% smaller, for ~10 µs more per recorded save (bench/bench_record.py).
            cur.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            mode = cur.execute("PRAGMA journal_mode = WAL").fetchone()
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.close()
            del mode

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # Writers take the write lock up front (no deadlock-prone lock upgrade);
            # readers (``READ`` engines) take none, so a long export or listing reads its
            # WAL snapshot while recorders keep writing.
            read = conn.get_execution_options().get(READ_OPTION)
            conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql"):
        try:
            return create_engine(url, pool_pre_ping=True, connect_args=pg_connect_args(url), **pool)
        except ModuleNotFoundError as exc:
            raise StoreError(
                f"PostgreSQL needs a driver that is not installed ({exc.name}): pip install 'convostore[postgres]'"
            ) from None
    raise StoreError(f"unsupported database URL {make_url(url).render_as_string(hide_password=True)!r}: use a file path, sqlite:/// or postgresql://")


def reader(engine: Engine) -> Engine:
    """The same engine for read-only work: on SQLite its transactions take no write lock."""
    return engine.execution_options(**{READ_OPTION: True})


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic filter: full-text search objects are managed by hand in the migrations."""
    if type_ == "table" and name and (name.startswith("interaction_fts") or name == "alembic_version"):
        return False
    if type_ == "column" and name == "search_vector":
        return False
    return not (type_ == "index" and name == "ix_interaction_search")


def migrations_dir() -> Path:
    """The Alembic scripts: in a checkout ``<repo>/migrations``, in a wheel ``convostore/_migrations``."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_migrations", here.parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise StoreError("convostore's migrations are missing from this installation")


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision, or None for an empty database (a read: no write lock)."""
    with reader(engine).connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except SQLAlchemyError:
            conn.rollback()
            return None


def upgrade(engine: Engine) -> None:
    """Apply every migration up to head (idempotent), under a lock: any number of processes
    may open a new database at once. PostgreSQL: a transaction-scoped advisory lock per
    schema (the others wait, then find the schema at head); SQLite: the transaction's
    ``BEGIN IMMEDIATE``. A migration may run long, so it lifts the statement timeout."""
    with _quiet_alembic():  # importing alembic logs its plugins too
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(migrations_dir()))
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('convostore-migrate:' || current_schema()))")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic's ~11 INFO lines per new archive stay out of an app's INFO logging.

    Only when the app left the ``alembic`` logger's level unset: one who configured it
    asked for those lines.
    """
    logger = logging.getLogger("alembic")
    if logger.level != logging.NOTSET:
        yield
        return
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(logging.NOTSET)


def alembic_config(connection: Any) -> Any:
    """An Alembic Config bound to ``connection`` (for tests and tools)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["connection"] = connection
    return cfg
