"""Schema migrations with alembic, driven from code (no alembic.ini needed by users)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # env.py picks the engine up from here, so migrations use the same tuned connections.
    cfg.attributes["engine"] = engine
    return cfg


def known_revisions() -> set[str]:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return {rev.revision for rev in script.walk_revisions()}


def create_schema(engine: Engine) -> None:
    """Create every table of a new database by running all migrations."""
    command.upgrade(alembic_config(engine), "head")


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def upgrade_database(db: str | None) -> tuple[str | None, str]:
    """Upgrade an existing database to the head revision: (revision before, after).

    DatabaseError, with nothing created, when there is no database there.
    """
    from scalelab.errors import DatabaseError
    from scalelab.store.engine import SCHEMA_HEAD, _engine_for, resolve_url, schema_revision

    engine = _engine_for(resolve_url(db))
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and not Path(database).exists():
        raise DatabaseError(f"no database at {database}; give the --db of an existing study")
    before = schema_revision(engine)
    if before is None:
        raise DatabaseError(
            f"{engine.url.render_as_string(hide_password=True)} holds no scalelab database; "
            "nothing to upgrade (give the --db of an existing study)"
        )
    if before not in known_revisions():
        raise DatabaseError(
            f"schema {before} is newer than this scalelab knows; upgrade scalelab instead"
        )
    upgrade_schema(engine)
    return before, SCHEMA_HEAD
