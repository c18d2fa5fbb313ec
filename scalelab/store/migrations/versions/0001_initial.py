"""Sweeps, jobs, checkpoints and probe results.

Revision ID: 0001_initial
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("grid_text", sa.Text(), nullable=False),
        sa.Column("grid_hash", sa.String(64), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("name", "grid_hash", name="uq_sweeps_name_hash"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sweep_id", sa.Integer(), sa.ForeignKey("sweeps.id"), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("params", sa.BigInteger(), nullable=False),
        sa.Column("flops", sa.Float(), nullable=False),
        sa.Column("examples", sa.BigInteger(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("epochs", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("claim_token", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(200)),
        sa.Column("host", sa.String(200)),
        sa.Column("slurm_job_id", sa.String(50)),
        sa.Column("lease_expires_at", sa.DateTime()),
        sa.Column("heartbeat_at", sa.DateTime()),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime()),
        sa.Column("finished_at", sa.DateTime()),
    )
    op.create_index("ix_jobs_status_id", "jobs", ["status", "id"])
    op.create_index("ix_jobs_status_lease", "jobs", ["status", "lease_expires_at"])
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "job_id", sa.Integer(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("epochs", sa.Float(), nullable=False),
        sa.Column("flops", sa.Float(), nullable=False),
        sa.Column("flop_convention", sa.String(20), nullable=False),
        sa.Column("compute", sa.Float(), nullable=False),
        sa.Column("wall_seconds", sa.Float()),
        sa.Column("achieved_flops_per_s", sa.Float()),
        sa.Column("train_loss", sa.Float()),
        sa.Column("upstream_loss", sa.Float()),
        sa.Column("upstream_error", sa.Float()),
        sa.Column("path", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("job_id", "epochs", name="uq_checkpoints_job_epochs"),
    )
    op.create_index("ix_checkpoints_job_id", "checkpoints", ["job_id"])
    op.create_table(
        "probes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "checkpoint_id",
            sa.Integer(),
            sa.ForeignKey("checkpoints.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("target", sa.String(100), nullable=False),
        sa.Column("method", sa.String(20), nullable=False),
        sa.Column("error", sa.Float(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("wall_seconds", sa.Float()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint(
            "checkpoint_id", "target", "method", name="uq_probes_ckpt_target_method"
        ),
    )
    op.create_index("ix_probes_checkpoint_id", "probes", ["checkpoint_id"])


def downgrade() -> None:
    op.drop_table("probes")
    op.drop_table("checkpoints")
    op.drop_table("jobs")
    op.drop_table("sweeps")
