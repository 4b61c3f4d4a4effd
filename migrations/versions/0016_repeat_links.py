"""重复诉求 (issue 16 item 1): a case names the parent it repeats (``repeat_of``) and when it was first
linked (``repeat_linked_at``); the candidates' prefilter reads category × report time × lon/lat from
one index; the repeats of the last days (the wall's alarm) from a partial index. Nothing to backfill.

Revision ID: 0016
Revises: 0015
"""
from alembic import op
import sqlalchemy as sa

revision, down_revision = '0016', '0015'
branch_labels = depends_on = None

LINKED = sa.text('repeat_of IS NOT NULL')


def upgrade() -> None:
    # nullable columns: plain ADD COLUMN on both databases (no table rewrite, no batch copy)
    op.add_column('incidents', sa.Column('repeat_of', sa.Integer(), nullable=True))
    op.add_column('incidents', sa.Column('repeat_linked_at', sa.DateTime(), nullable=True))
    op.create_index('ix_incidents_category_reported_lonlat', 'incidents',
                    ['category_code', 'reported_at', 'lon', 'lat'])
    op.create_index('ix_incidents_repeat_of', 'incidents', ['repeat_of'])
    op.create_index('ix_incidents_repeats_reported', 'incidents', ['reported_at'],
                    sqlite_where=LINKED, postgresql_where=LINKED)


def downgrade() -> None:
    op.drop_index('ix_incidents_repeats_reported', 'incidents')
    op.drop_index('ix_incidents_repeat_of', 'incidents')
    op.drop_index('ix_incidents_category_reported_lonlat', 'incidents')
    op.execute('ALTER TABLE incidents DROP COLUMN repeat_linked_at')
    op.execute('ALTER TABLE incidents DROP COLUMN repeat_of')
