"""alembic environment: the engine comes from scalelab.store.migrate.alembic_config."""

from alembic import context

from scalelab.store.schema import Base

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    # A batch migration on SQLite recreates a table and drops the old one; with foreign keys
    # on, that drop deletes every row that references it (ON DELETE CASCADE: all probes of
    # all checkpoints). The pragma only takes effect outside a transaction, so it is set on
    # the driver connection before the first statement, and restored after the commit.
    driver = connection.connection.dbapi_connection if engine.dialect.name == "sqlite" else None
    if driver is not None:
        driver.execute("PRAGMA foreign_keys = OFF")
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=True,  # SQLite cannot ALTER most things in place
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        if driver is not None:
            driver.execute("PRAGMA foreign_keys = ON")
