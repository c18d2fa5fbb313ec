"""Opening a results database: URL resolution, SQLite tuning, schema checks, sessions.

SQLite is tuned for many worker processes on one host: WAL (readers never block the writer),
a generous busy timeout, and ``BEGIN IMMEDIATE`` for every writing transaction, so a writer
takes the lock up front instead of failing with "database is locked" when a deferred read
transaction tries to upgrade. Writers of one host also queue on an flock() of a lock file
beside the database: SQLite's busy handler polls with sleeps of up to 100 ms, which makes 8
contending claimants an order of magnitude slower than one, while a process blocked in
flock() is woken by the kernel the moment the lock is free.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.exc import DatabaseError as SADatabaseError
from sqlalchemy.orm import Session, sessionmaker

from scalelab.errors import DatabaseError

DEFAULT_DB = "runs.db"
SQLITE_BUSY_TIMEOUT_S = 120.0

# The schema revision this code reads and writes (alembic head). Bump with every migration.
SCHEMA_HEAD = "0003_study_identity"


def resolve_url(db: str | os.PathLike[str] | None) -> str:
    """A file path or SQLAlchemy URL (default: $SCALELAB_DB, then ./runs.db) as a URL."""
    db = str(db) if db is not None else os.environ.get("SCALELAB_DB") or DEFAULT_DB
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).expanduser().resolve()}"


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


@lru_cache(maxsize=16)
def _engine_for(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(
            f"cannot parse database URL {url!r}; give a file path like runs.db or a URL like "
            "postgresql+psycopg://user@host/dbname"
        ) from None
    kwargs: dict = {"future": True}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except NoSuchModuleError:
        raise DatabaseError(
            f"no SQLAlchemy driver for {parsed.drivername!r}; for PostgreSQL use "
            "postgresql+psycopg://... and pip install 'scalelab[postgres]'"
        ) from None
    except ModuleNotFoundError as exc:
        raise DatabaseError(
            f"the database driver {exc.name!r} is not installed; "
            "run: pip install 'scalelab[postgres]'"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        _tune_sqlite(engine)
    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _describe(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or url
    return parsed.render_as_string(hide_password=True)


def schema_revision(engine: Engine) -> str | None:
    """The alembic revision stored in the database, None for an empty database.

    Raises DatabaseError for something that is not a scalelab database.
    """
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        tables = set(inspect(conn).get_table_names())
        if not tables:
            return None
        if "alembic_version" not in tables or "jobs" not in tables:
            raise DatabaseError(
                f"{_describe(str(engine.url))} is not a scalelab database "
                f"(tables: {', '.join(sorted(tables)[:5])}); give another --db or a new file name"
            )
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return row[0] if row else None


def open_engine(db: str | os.PathLike[str] | None = None, *, create: bool = True) -> Engine:
    """Open (and on first use create) a scalelab database, checking its schema revision.

    ``create=False``: an absent file, or a database without tables, is an error, and nothing
    is created (a command that only reads must not leave a database behind).
    """
    engine = existing_engine(db)
    if engine is not None:
        return engine
    url = resolve_url(db)
    if not create:
        raise DatabaseError(
            f"no database at {_describe(url)}; run `scalelab enqueue GRID` to create one"
        )
    engine = _engine_for(url)
    if is_sqlite(engine):
        path = Path(make_url(url).database or "")
        if not path.parent.is_dir():
            raise DatabaseError(f"cannot create {path}: folder {path.parent} does not exist")
    from scalelab.store.migrate import create_schema

    create_schema(engine)
    return engine


def existing_engine(db: str | os.PathLike[str] | None = None) -> Engine | None:
    """The scalelab database at ``db`` with its schema checked, or None where there is none
    yet (no SQLite file, or a database without tables). Creates nothing."""
    url = resolve_url(db)
    engine = _engine_for(url)
    where = _describe(url)
    if is_sqlite(engine) and not Path(make_url(url).database or "").exists():
        return None
    try:
        revision = schema_revision(engine)
    except OperationalError as exc:
        reason = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(
            f"cannot reach database {where}: {reason}; check --db / SCALELAB_DB"
        ) from None
    except SADatabaseError:
        raise DatabaseError(
            f"{where} is not a scalelab database (not even SQLite); give another --db"
        ) from None
    if revision is None:
        return None
    if revision != SCHEMA_HEAD:
        from scalelab.store.migrate import known_revisions

        if revision in known_revisions():
            raise DatabaseError(
                f"{where} has an older schema ({revision}); run `scalelab db upgrade --db {where}`"
            )
        raise DatabaseError(
            f"{where} was written by a newer scalelab (schema {revision}); "
            "upgrade scalelab: pip install -U scalelab"
        )
    return engine


class _WriterLock:
    """An exclusive flock() on ``<database>-writers``, re-entrant per process (see module doc)."""

    _locks: dict[str, _WriterLock] = {}
    _guard = threading.Lock()

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.thread_lock = threading.RLock()
        self.depth = 0

    @classmethod
    def for_engine(cls, engine: Engine) -> _WriterLock | None:
        database = engine.url.database
        if not is_sqlite(engine) or not database or database == ":memory:":
            return None
        with cls._guard:
            lock = cls._locks.get(database)
            if lock is None:
                lock = cls._locks[database] = cls(f"{database}-writers")
            return lock

    @contextmanager
    def held(self) -> Iterator[None]:
        with self.thread_lock:
            if self.depth == 0:
                fcntl.flock(self.fd, fcntl.LOCK_EX)
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1
                if self.depth == 0:
                    fcntl.flock(self.fd, fcntl.LOCK_UN)


@contextmanager
def session_scope(engine: Engine, *, write: bool = True) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error (nothing half-written).

    ``write=False`` opens a deferred (read) transaction on SQLite, which never waits for
    writers under WAL.
    """
    writer_lock = _WriterLock.for_engine(engine) if write else None
    with writer_lock.held() if writer_lock else nullcontext():
        session = _sessionmaker(engine)()
        if not write and is_sqlite(engine):
            session.connection(execution_options={"sqlite_begin": "DEFERRED"})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


def take_turns(session: Session, name: str) -> None:
    """Within a writing transaction: wait until no other transaction holds the turn ``name``.

    Creating a shared row (a sweep, the provenance of a process) is a lookup then an insert
    under a unique constraint. On PostgreSQL two transactions can both miss the row, and the
    second then fails on the constraint; a transaction-scoped advisory lock makes them take
    turns, and the second's lookup (a new statement, so a new snapshot) finds the first's
    row. SQLite's writing transactions already run one at a time (BEGIN IMMEDIATE).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:turn))"), {"turn": f"scalelab:{name}"}
        )


@lru_cache(maxsize=16)
def _sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)
