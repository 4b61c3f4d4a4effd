"""case facts: one narrow row per case with what the KPIs read (incidents.facts), and the two case
milestones it needs that older rows lack (first dispatch, handling hours)

The first dispatch is filled from the events here; the handling hours need the pack's working
calendar, so ``init-db`` fills them after the migrations (incidents.facts.backfill_milestones) and
writes the fact rows again.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_TEXT = {'state': 16, 'state_before_suspend': 16, 'department_code': 40, 'district_code': 20, 'grid_code': 20,
         'category_code': 20, 'channel': 16, 'priority': 16}
_TIMES = ('reported_at', 'registered_at', 'first_dispatched_at', 'resolved_at', 'deadline', 'suspended_at',
          'updated_at')
_MILESTONES = {'first_dispatched_at': sa.DateTime(), 'handling_hours': sa.Float(), 'dispatch_count': sa.Integer(),
               'close_count': sa.Integer(), 'first_closed_at': sa.DateTime(), 'last_dispatched_at': sa.DateTime(),
               'last_closed_at': sa.DateTime()}
_REQUIRED = {'reported_at', 'updated_at', 'state', 'channel', 'priority', 'reworked', 'misdispatched', 'extended'}


def _col(name, type_):
    return sa.Column(name, type_, nullable=name not in _REQUIRED)


def upgrade() -> None:
    with op.batch_alter_table('incidents') as batch_op:
        for name, type_ in _MILESTONES.items():
            batch_op.add_column(sa.Column(name, type_, nullable=True))
    # what the timeline says, once: first dispatch / closure and how many (NULL = none)
    for column, agg, action in (('first_dispatched_at', 'MIN(e.at)', 'dispatch'),
                                ('first_closed_at', 'MIN(e.at)', 'verify_pass'),
                                ('last_dispatched_at', 'MAX(e.at)', 'dispatch'),
                                ('last_closed_at', 'MAX(e.at)', 'verify_pass'),
                                ('dispatch_count', 'NULLIF(COUNT(*), 0)', 'dispatch'),
                                ('close_count', 'NULLIF(COUNT(*), 0)', 'verify_pass')):
        # (``e.action || ''``: SQLite would walk the (action, at) index for every case, all of an action's
        # events each time; kept off it, it takes the case's own events from the (incident_id, id) index)
        op.execute(f"UPDATE incidents SET {column} = (SELECT {agg} FROM incident_events e "
                   f"WHERE e.incident_id = incidents.id AND e.action || '' = '{action}')")
    op.create_table('case_facts',
                    sa.Column('incident_id', sa.Integer(), sa.ForeignKey('incidents.id'), primary_key=True,
                              autoincrement=False),
                    *[_col(n, sa.DateTime()) for n in _TIMES],
                    *[_col(n, sa.String(length=k)) for n, k in _TEXT.items()],
                    *[_col(n, sa.Boolean()) for n in ('on_time', 'reworked', 'misdispatched', 'extended')],
                    _col('handling_hours', sa.Float()), _col('first_closed_at', sa.DateTime()),
                    _col('dispatches', sa.Integer()), _col('closures', sa.Integer()),
                    _col('last_dispatched_at', sa.DateTime()), _col('last_closed_at', sa.DateTime()))
    for name in ('reported_at', 'registered_at', 'first_dispatched_at', 'first_closed_at', 'last_dispatched_at',
                 'last_closed_at', 'updated_at'):
        op.create_index(f'ix_case_facts_{name}', 'case_facts', [name])
    op.create_index('ix_case_facts_state_deadline', 'case_facts', ['state', 'deadline'])
    repeated = sa.text('dispatches > 2 OR closures > 2')     # the few the timeline is asked about
    op.create_index('ix_case_facts_repeated', 'case_facts', ['incident_id'], sqlite_where=repeated,
                    postgresql_where=repeated)
    op.execute("INSERT INTO case_facts (incident_id, reported_at, registered_at, first_dispatched_at, resolved_at, "
               "deadline, suspended_at, updated_at, state, state_before_suspend, department_code, district_code, "
               "grid_code, category_code, channel, priority, on_time, reworked, misdispatched, extended, "
               "handling_hours, first_closed_at, dispatches, closures, last_dispatched_at, last_closed_at) SELECT id, reported_at, registered_at, first_dispatched_at, resolved_at, deadline, "
               "suspended_at, updated_at, state, state_before_suspend, department_code, district_code, grid_code, "
               "category_code, channel, priority, on_time, rework_count > 0, return_count + reassign_count > 0, "
               "extension_count > 0, handling_hours, first_closed_at, dispatch_count, close_count, last_dispatched_at, "
               "last_closed_at FROM incidents")


def downgrade() -> None:
    op.drop_table('case_facts')
    # ALTER TABLE … DROP COLUMN in place (SQLite ≥ 3.35): a batch copy of incidents would have to
    # drop a table the events refer to
    for column in _MILESTONES:
        op.execute(f'ALTER TABLE incidents DROP COLUMN {column}')
