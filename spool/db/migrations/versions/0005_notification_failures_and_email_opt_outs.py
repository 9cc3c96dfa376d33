"""notifications: failed_at and error; email_opt_outs

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 03:40:00.000000

A delivery the receiver refuses for good (an SMTP 5xx, a malformed address, a recipient who
opted out) is recorded on its ledger row, with the reason, and never tried again: the
pending rows are those neither delivered nor failed. Both nullable: rows made before were
never refused. email_opt_outs holds the recipients who followed a signed unsubscribe link.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column(
        "notifications", sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("notifications", sa.Column("error", sa.String(length=500), nullable=True))
    op.create_table(
        "email_opt_outs",
        sa.Column("recipient", sa.String(length=300), nullable=False),
        sa.Column(
            "opted_out_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("recipient"),
    )


def downgrade() -> None:
    op.drop_table("email_opt_outs")
    # Batch mode: SQLite drops a column by rebuilding the table.
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("error")
        batch.drop_column("failed_at")
