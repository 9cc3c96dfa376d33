"""uploads: resumable uploads' state

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 03:40:00.000000

One row per resumable upload (tus at /v1/uploads): its length, the bytes received and where
they are (the store's multipart handle, its parts, the tail short of a whole part), its
options, its expiry and the lease of the one request writing it (spool/db/uploads.py). Any
API process takes an upload up from here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("upload_id", sa.String(length=64), primary_key=True),
        sa.Column("video_id", sa.String(length=100), nullable=False, unique=True),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("raw_metadata", sa.Text(), nullable=False),
        sa.Column("handle", sa.String(length=1024), nullable=True),
        sa.Column("parts", sa.Text(), nullable=False),
        sa.Column("tail_key", sa.String(length=500), nullable=True),
        sa.Column("tail_bytes", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("job_id", sa.String(length=200), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_uploads_key_id", "uploads", ["key_id"])


def downgrade() -> None:
    op.drop_index("ix_uploads_key_id", table_name="uploads")
    op.drop_table("uploads")
