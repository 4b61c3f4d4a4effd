"""IoT alarms folded into one open case per device (issue 15 item 6): ``alarm_count`` counts the
alarms a case stands for (1 for the first; None for cases that are not folded alarms).

Revision ID: 0015
Revises: 0014
"""
from alembic import op
import sqlalchemy as sa

revision, down_revision = '0015', '0014'
branch_labels = depends_on = None


def upgrade() -> None:
    # a nullable column: plain ADD COLUMN on both databases (no table rewrite, no batch copy)
    op.add_column('incidents', sa.Column('alarm_count', sa.Integer(), nullable=True))


def downgrade() -> None:
    op.execute('ALTER TABLE incidents DROP COLUMN alarm_count')
