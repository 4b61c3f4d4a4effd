"""The source's own deadline (issue 15 item 3): an import mapping's ``[timestamps] deadline`` kept on
the case (``source_deadline``) and in force instead of the category's limit (services.set_deadline;
incidents.kpis.deadline_in_force rebuilds the same). Older cases have none: nothing to backfill.

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa

revision, down_revision = '0013', '0012'
branch_labels = depends_on = None


def upgrade() -> None:
    # a nullable column: plain ADD COLUMN on both databases (no table rewrite, no batch copy)
    op.add_column('incidents', sa.Column('source_deadline', sa.DateTime(), nullable=True))


def downgrade() -> None:
    op.execute('ALTER TABLE incidents DROP COLUMN source_deadline')
