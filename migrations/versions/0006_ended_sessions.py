"""ended sessions: a browser session's id is kept when it logs out, so its signed cookie is refused
afterwards even if a late answer sets it again

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision, down_revision = '0006', '0005'
branch_labels = depends_on = None


def upgrade() -> None:
    op.create_table('ended_sessions', sa.Column('sid', sa.String(length=40), primary_key=True),
                    sa.Column('ended_at', sa.DateTime(), nullable=False))
    op.create_index('ix_ended_sessions_ended_at', 'ended_sessions', ['ended_at'])


def downgrade() -> None:
    op.drop_table('ended_sessions')
