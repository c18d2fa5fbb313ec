"""Stored fits, and the provenance of every checkpoint.

Revision ID: 0002_fits_provenance
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_fits_provenance"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provenance",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("scalelab_version", sa.String(50), nullable=False),
        sa.Column("git_commit", sa.String(64), nullable=False),
        sa.Column("torch_version", sa.String(50), nullable=False),
        sa.Column("device", sa.String(100), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.UniqueConstraint(
            "scalelab_version",
            "git_commit",
            "torch_version",
            "device",
            "host",
            name="uq_provenance_all",
        ),
    )
    with op.batch_alter_table("checkpoints") as batch:
        batch.add_column(sa.Column("provenance_id", sa.Integer()))
        batch.create_foreign_key(
            "fk_checkpoints_provenance", "provenance", ["provenance_id"], ["id"]
        )
    op.create_table(
        "fits",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("target", sa.String(100), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("checkpoint_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_fits_target", "fits", ["target"])


def downgrade() -> None:
    op.drop_index("ix_fits_target", "fits")
    op.drop_table("fits")
    with op.batch_alter_table("checkpoints") as batch:
        batch.drop_constraint("fk_checkpoints_provenance", type_="foreignkey")
        batch.drop_column("provenance_id")
    op.drop_table("provenance")
