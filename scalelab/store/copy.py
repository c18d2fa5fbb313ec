"""`scalelab db copy`: move a study between backends (SQLite ⇄ PostgreSQL) with nothing lost.

Rows are copied table by table in foreign-key order with their ids, in one transaction on
the target; PostgreSQL's id sequences are then moved past the copied ids. The study's identity
is copied too (replacing the one the new database was made with), so its checkpoint folders
stay its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, Integer, delete, func, insert, select, text

from scalelab.errors import DatabaseError
from scalelab.store.engine import is_sqlite, open_engine, session_scope
from scalelab.store.schema import Base, Study

BATCH = 5000


@dataclass(frozen=True)
class CopyReport:
    rows: dict[str, int]


def _tables() -> list:
    return list(Base.metadata.sorted_tables)  # parents before children


def copy_database(source: str, target: str) -> CopyReport:
    src = open_engine(source, create=False)
    dst = open_engine(target)
    with session_scope(dst, write=False) as session:
        occupied = [
            t.name
            for t in _tables()
            if t.name != Study.__tablename__  # every new database has its own identity row
            and session.execute(select(func.count()).select_from(t)).scalar()
        ]
    if occupied:
        raise DatabaseError(
            f"the target database already holds data (tables: {', '.join(occupied)}); "
            "copy into a new, empty database"
        )
    rows: dict[str, int] = {}
    with session_scope(src, write=False) as reader, session_scope(dst) as writer:
        writer.execute(delete(Study))
        for table in _tables():
            result = reader.execute(select(table).order_by(*table.primary_key.columns))
            count = 0
            while chunk := result.fetchmany(BATCH):
                writer.execute(insert(table), [dict(row._mapping) for row in chunk])
                count += len(chunk)
            rows[table.name] = count
        if not is_sqlite(dst):
            for table in _tables():
                if not isinstance(table.c.id.type, Integer):
                    continue  # the study's id is a UUID: no sequence
                writer.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
                    )
                )
    return CopyReport(rows=rows)


def row_counts(engine: Engine) -> dict[str, int]:
    with session_scope(engine, write=False) as session:
        return {
            t.name: session.execute(select(func.count()).select_from(t)).scalar() or 0
            for t in _tables()
        }
