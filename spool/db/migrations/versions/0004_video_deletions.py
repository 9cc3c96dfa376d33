"""video_deletions: a row per video whose delete was accepted

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 03:40:00.000000

Written when a delete is accepted and kept after the video is gone (spool/db/deletions.py):
the API answers 404 for a video with a row here, a late write of its job adds no row back,
and a repeated delete answers with the same job.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "video_deletions",
        sa.Column("video_id", sa.String(length=100), nullable=False),
        sa.Column("job_id", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column(
            "requested_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=True
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("video_id"),
    )


def downgrade() -> None:
    op.drop_table("video_deletions")
