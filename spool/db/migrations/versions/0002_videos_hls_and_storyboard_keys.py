"""videos: hls_key and storyboard_key

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 08:30:00.000000

A chunked job's adaptive-streaming outputs: the key of its HLS master playlist and of its
storyboard's WebVTT thumbnails track. Both nullable: jobs made before (and jobs whose HLS or
storyboard could not be made) have none, and the status shows no URL for them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("videos", sa.Column("hls_key", sa.String(length=500), nullable=True))
    op.add_column("videos", sa.Column("storyboard_key", sa.String(length=500), nullable=True))


def downgrade() -> None:
    # Batch mode: SQLite drops a column by rebuilding the table.
    with op.batch_alter_table("videos") as batch:
        batch.drop_column("storyboard_key")
        batch.drop_column("hls_key")
