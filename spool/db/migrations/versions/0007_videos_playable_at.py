"""videos: playable_at

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 10:40:00.000000

When a video could first be played, before its job was ready: the live playlists' first
publish (docs/pipelines.md, "Playable within seconds"). Nullable: videos made before, and
jobs planned without live playlists, have none.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("videos", sa.Column("playable_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Batch mode: SQLite drops a column by rebuilding the table.
    with op.batch_alter_table("videos") as batch:
        batch.drop_column("playable_at")
