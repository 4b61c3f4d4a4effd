"""签收 and 审定 (issue 14 items 1 and 2): a case's sign-for deadline (``sign_due``, the current
dispatch's), the first dispatch's sign-for deadline and the first sign-for (``first_sign_due``,
``first_signed_at``: 按时签收率, in the fact rows too) and whether it was dispatched by arbitration
(``arbitrated``: the department can no longer return it).

The first sign-for of older cases comes from their events and the first dispatch's sign-for deadline
from the pack's calendar and [workflow.sign_for_hours]: both need the pack, so ``init-db`` fills them
after the migrations (incidents.facts.backfill_milestones), as it does the handling hours of 0004.

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa

revision, down_revision = '0009', '0008'
branch_labels = depends_on = None


def upgrade() -> None:
    # nullable columns and a constant default: plain ADD COLUMN on both databases (no table rewrite on
    # PostgreSQL; no batch copy of ``incidents`` on SQLite, which other tables' foreign keys point at)
    op.add_column('incidents', sa.Column('sign_due', sa.DateTime(), nullable=True))
    op.add_column('incidents', sa.Column('first_sign_due', sa.DateTime(), nullable=True))
    op.add_column('incidents', sa.Column('first_signed_at', sa.DateTime(), nullable=True))
    op.add_column('incidents', sa.Column('arbitrated', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('case_facts', sa.Column('first_sign_due', sa.DateTime(), nullable=True))
    op.add_column('case_facts', sa.Column('first_signed_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    # plain ALTER TABLE … DROP COLUMN (SQLite ≥ 3.35 too): a batch copy of ``incidents`` would drop a
    # table other tables' foreign keys point at
    for table, columns in (('case_facts', ('first_signed_at', 'first_sign_due')),
                           ('incidents', ('arbitrated', 'first_signed_at', 'first_sign_due', 'sign_due'))):
        for column in columns:
            op.execute(f'ALTER TABLE {table} DROP COLUMN {column}')
