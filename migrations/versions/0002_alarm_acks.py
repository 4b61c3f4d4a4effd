"""wall alarm acknowledgements; indexes for the wall's department and feed-health panels

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alarm_acks',
                    sa.Column('key', sa.String(length=120), nullable=False),
                    sa.Column('acked_by', sa.String(length=60), nullable=False),
                    sa.Column('acked_at', sa.DateTime(), nullable=False),
                    sa.PrimaryKeyConstraint('key'))
    op.create_index('ix_incidents_resolved_at', 'incidents', ['resolved_at'])
    op.create_index('ix_incidents_source_reported', 'incidents', ['source', 'reported_at'])


def downgrade() -> None:
    op.drop_index('ix_incidents_source_reported', table_name='incidents')
    op.drop_index('ix_incidents_resolved_at', table_name='incidents')
    op.drop_table('alarm_acks')
