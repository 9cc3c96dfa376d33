"""posts: state, fence and publish_at

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 03:40:00.000000

A post now has a life (docs/posts.md): its state (scheduled, published, unpublished, deleted),
the fence of the newest operation written (an older one arriving late changes nothing) and,
while scheduled, its time, and whether it was ever published (its followers told then, never
again). Every post recorded before was published, at its version's fence.
The authors' counts are recounted from the posts published now, which is what they mean from
this revision on; the author_posts ledger is no longer written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.add_column(
            sa.Column("state", sa.String(length=16), server_default="published", nullable=False)
        )
        batch.add_column(sa.Column("fence", sa.BigInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("publish_at", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("announced", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.execute("UPDATE posts SET fence = version")
    op.execute("UPDATE posts SET announced = true")
    op.create_index("ix_posts_author_state", "posts", ["author_id", "state", "post_id"])
    op.execute(
        "UPDATE authors SET post_count = (SELECT COUNT(*) FROM posts"
        " WHERE posts.author_id = authors.author_id AND posts.state = 'published')"
    )


def downgrade() -> None:
    op.drop_index("ix_posts_author_state", table_name="posts")
    with op.batch_alter_table("posts") as batch:
        batch.drop_column("announced")
        batch.drop_column("publish_at")
        batch.drop_column("fence")
        batch.drop_column("state")
