"""The warning for a SQLite file on a network filesystem used from several hosts."""

from __future__ import annotations

from pathlib import Path

from conftest import insert_jobs
from sqlalchemy import update

from scalelab.store.engine import open_engine, session_scope
from scalelab.store.schema import Job
from scalelab.store.sharing import filesystem_type, shared_sqlite_warning


def test_filesystem_type_takes_the_longest_mount_prefix(tmp_path: Path) -> None:
    mounts = f"/dev/vda / ext4 rw 0 0\nserver:/export {tmp_path} nfs4 rw 0 0\n"
    assert filesystem_type(tmp_path / "sub", mounts) == "nfs4"
    assert filesystem_type(Path("/usr"), mounts) == "ext4"


def test_warns_only_on_a_network_filesystem_with_several_hosts(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    insert_jobs(str(db), 2)
    engine = open_engine(str(db))
    nfs = f"/dev/vda / ext4 rw 0 0\nserver:/export {tmp_path} nfs rw 0 0\n"
    assert shared_sqlite_warning(engine, "/dev/vda / ext4 rw 0 0\n") is None
    assert shared_sqlite_warning(engine, nfs) is None  # this host alone
    with session_scope(engine) as session:
        session.execute(update(Job).where(Job.id == 1).values(host="node-17"))
    warning = shared_sqlite_warning(engine, nfs)
    assert warning is not None
    assert warning.startswith(
        f"warning: {db} is on a network filesystem (nfs) and used from 2 hosts"
    )
    assert warning.endswith(
        f"Move the study to PostgreSQL: scalelab db copy --from {db} "
        "--to postgresql+psycopg://USER@HOST/DB"
    )
