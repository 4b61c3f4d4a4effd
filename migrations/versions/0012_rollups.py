"""The frozen cases' rollups (incidents.rollups): ``case_facts.frozen_at`` — when a closed or voided
case took its last step, 9999-12-31 while it can still change — and ``case_rollups``, their sums
per week they froze in × department or district × milestone × city-time day.

The rows depend on the pack's time zone and citizen channels, which a migration does not know:
``init-db`` builds them (incidents.rollups.ensure); until then the KPI scan reads every fact row.

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa

revision, down_revision = '0012', '0011'
branch_labels = depends_on = None

_NEVER = '9999-12-31 00:00:00.000000'   # (as SQLAlchemy writes a datetime on SQLite: compared as text there)
_LAST = ('reported_at', 'registered_at', 'first_dispatched_at', 'last_dispatched_at', 'resolved_at',
         'first_closed_at', 'last_closed_at', 'suspended_at', 'revised_at', 'first_signed_at',
         'first_contacted_at', 'first_revisited_at')
_SUMS = ('n', 'live', 'closed', 'closed_on_time', 'reworked', 'on_time_final', 'accurate', 'extended',
         'resolved_final', 'signable', 'signed_on_time', 'cit', 'cit_contacted', 'cit_resolved', 'cit_solved',
         'cit_revisited')


def upgrade() -> None:
    with op.batch_alter_table('case_facts') as batch_op:
        batch_op.add_column(sa.Column('frozen_at', sa.DateTime(), nullable=False, server_default=_NEVER))
    greatest = 'GREATEST' if op.get_bind().dialect.name == 'postgresql' else 'MAX'
    last = ', '.join(f'COALESCE({c}, reported_at)' for c in _LAST)
    op.execute(f"UPDATE case_facts SET frozen_at = {greatest}({last}) WHERE state IN ('closed', 'voided')")
    op.create_index('ix_case_facts_frozen_at', 'case_facts', ['frozen_at', 'reported_at'])
    op.create_table(
        'case_rollups',
        sa.Column('week', sa.Integer(), primary_key=True),
        sa.Column('kind', sa.String(12), primary_key=True),
        sa.Column('unit', sa.String(40), primary_key=True),
        sa.Column('milestone', sa.String(12), primary_key=True),
        sa.Column('day', sa.Date(), primary_key=True),
        sa.Column('day2', sa.Date(), primary_key=True),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in _SUMS],
        sa.Column('hours', sa.Float(), nullable=False),
        sa.Column('one', sa.Integer(), nullable=False),
        sa.Column('two', sa.Integer(), nullable=False),
    )
    op.create_index('ix_case_rollups_day', 'case_rollups', ['day'])
    op.create_index('ix_case_rollups_day2', 'case_rollups', ['day2'])


def downgrade() -> None:
    op.drop_table('case_rollups')
    op.execute("DELETE FROM meta WHERE key = 'rollup_basis'")
    op.drop_index('ix_case_facts_frozen_at', 'case_facts')
    with op.batch_alter_table('case_facts') as batch_op:
        batch_op.drop_column('frozen_at')
