"""event requests: the idempotency keys of actions in a table of their own (event_requests), so that
incident_events needs no unique key of its own (a table partitioned by month could not hold one
without the month in it): ``incident_events.request_id`` stays as a plain indexed column (the
timeline shows it).

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# 0001 left the unique key on request_id unnamed on SQLite: the batch copy names what it reflects
_NAMES = {'uq': 'uq_%(table_name)s_%(column_0_name)s'}
_UNIQUE = {'postgresql': 'incident_events_request_id_key', 'sqlite': 'uq_incident_events_request_id'}


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table('event_requests',
                    sa.Column('request_id', sa.String(length=80), primary_key=True),
                    sa.Column('incident_id', sa.Integer(), sa.ForeignKey('incidents.id'), nullable=False),
                    sa.Column('event_id', sa.Integer(), nullable=False))
    op.execute("INSERT INTO event_requests (request_id, incident_id, event_id) "
               "SELECT request_id, incident_id, id FROM incident_events WHERE request_id IS NOT NULL")
    with op.batch_alter_table('incident_events', naming_convention=_NAMES) as batch_op:
        batch_op.drop_constraint(_unique_name(bind), type_='unique')
        batch_op.create_index('ix_incident_events_request_id', ['request_id'], unique=False)


def downgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table('incident_events', naming_convention=_NAMES) as batch_op:
        batch_op.drop_index('ix_incident_events_request_id')
        batch_op.create_unique_constraint(_UNIQUE[bind.dialect.name], ['request_id'])
    op.drop_table('event_requests')


def _unique_name(bind) -> str:
    found = [u['name'] for u in sa.inspect(bind).get_unique_constraints('incident_events')
             if u['column_names'] == ['request_id']]
    return found[0] if found and found[0] else _UNIQUE[bind.dialect.name]

