"""The study's identity: one UUID per results database, kept by `scalelab db copy`.

Checkpoint folders are keyed by it, so two databases that share a workdir never read or
overwrite each other's files. An upgraded database gets its identity here.

Revision ID: 0003_study_identity
Revises: 0002_fits_provenance
"""

import datetime as dt
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0003_study_identity"
down_revision = "0002_fits_provenance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    study = op.create_table(
        "study",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    op.bulk_insert(study, [{"id": str(uuid.uuid4()), "created_at": now}])


def downgrade() -> None:
    op.drop_table("study")
