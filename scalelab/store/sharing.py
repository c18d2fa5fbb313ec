"""A warning for SQLite files on network filesystems used from several hosts.

SQLite's WAL needs shared memory and its locks rely on POSIX advisory locks, which NFS, Lustre
and friends do not provide reliably across hosts: two nodes can both "hold" the write lock and
corrupt the queue. One host is fine; several hosts need PostgreSQL.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from sqlalchemy import Engine, select

from scalelab.store.engine import is_sqlite, session_scope
from scalelab.store.schema import Job

NETWORK_FILESYSTEMS = {
    "nfs",
    "nfs4",
    "lustre",
    "cifs",
    "smb3",
    "smbfs",
    "gpfs",
    "beegfs",
    "ceph",
    "glusterfs",
    "fuse.sshfs",
    "fuse.glusterfs",
    "fuse.ceph",
    "afs",
    "9p",
    "panfs",
    "wekafs",
}


def filesystem_type(path: Path, mounts: str | None = None) -> str | None:
    """The type of the filesystem holding `path` (longest mount-point prefix in /proc/mounts)."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return None
    target = os.path.realpath(path)
    best, best_type = "", None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, fields[2]
    return best_type


def shared_sqlite_warning(engine: Engine, mounts: str | None = None) -> str | None:
    """A one-line warning with the fix, or None when the setup is safe."""
    if not is_sqlite(engine) or not engine.url.database:
        return None
    path = Path(engine.url.database)
    fstype = filesystem_type(path.parent, mounts)
    if fstype not in NETWORK_FILESYSTEMS:
        return None
    with session_scope(engine, write=False) as session:
        hosts = set(session.scalars(select(Job.host).where(Job.host.is_not(None)).distinct()))
    hosts.add(socket.gethostname())
    if len(hosts) < 2:
        return None
    return (
        f"warning: {path} is on a network filesystem ({fstype}) and used from {len(hosts)} hosts "
        f"({', '.join(sorted(hosts))}); SQLite's locking is not safe there. Move the study to "
        f"PostgreSQL: scalelab db copy --from {path} --to postgresql+psycopg://USER@HOST/DB"
    )
