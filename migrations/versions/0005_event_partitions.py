"""event requests: the idempotency keys of actions in a table of their own (event_requests), so that
incident_events needs no unique key of its own; on PostgreSQL incident_events partitioned by month

A partitioned table's unique keys must hold its partition key: ``incident_events.request_id`` stays
as a plain indexed column (the timeline shows it), and the primary key on PostgreSQL becomes
(id, at). The monthly partitions (data_sources.store.partitions) run from the month of the oldest
event to 12 months ahead, beside a DEFAULT partition; the id sequence moves to the new table.

Revision ID: 0005
Revises: 0004
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa

from data_sources.store import partitions

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
    if bind.dialect.name == 'postgresql':
        _rebuild_events(bind, partitioned=True)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        _rebuild_events(bind, partitioned=False)
        if not bind.scalar(sa.text("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                   "WHERE n.nspname = :s"), {"s": partitions.SCHEMA}):
            op.execute(f"DROP SCHEMA IF EXISTS {partitions.SCHEMA}")
    with op.batch_alter_table('incident_events', naming_convention=_NAMES) as batch_op:
        batch_op.drop_index('ix_incident_events_request_id')
        batch_op.create_unique_constraint(_UNIQUE[bind.dialect.name], ['request_id'])
    op.drop_table('event_requests')


def _unique_name(bind) -> str:
    found = [u['name'] for u in sa.inspect(bind).get_unique_constraints('incident_events')
             if u['column_names'] == ['request_id']]
    return found[0] if found and found[0] else _UNIQUE[bind.dialect.name]


def _rebuild_events(bind, *, partitioned: bool) -> None:
    """incident_events built again, partitioned by month or plain, from its own definition
    (``LIKE … INCLUDING DEFAULTS``: the columns, NOT NULLs and the id's sequence default), its rows,
    the sequence owned by the new id column and the same indexes by the same names."""
    indexes = [(i['name'], i['column_names']) for i in sa.inspect(bind).get_indexes('incident_events')
               if 'duplicates_constraint' not in i]
    sequence = bind.scalar(sa.text("SELECT pg_get_serial_sequence('incident_events', 'id')"))
    oldest = bind.scalar(sa.text("SELECT min(at) FROM incident_events"))
    op.execute("ALTER TABLE incident_events RENAME TO incident_events_old")
    op.execute("ALTER INDEX incident_events_pkey RENAME TO incident_events_old_pkey")
    for name, _ in indexes:
        op.execute(f"DROP INDEX {name}")
    key, by = ("id, at", " PARTITION BY RANGE (at)") if partitioned else ("id", "")
    op.execute(f"CREATE TABLE incident_events (LIKE incident_events_old INCLUDING DEFAULTS, "
               f"CONSTRAINT incident_events_pkey PRIMARY KEY ({key}), "
               f"FOREIGN KEY (incident_id) REFERENCES incidents (id)){by}")
    if partitioned:
        partitions.create_default(bind)
        partitions.ensure_ahead(bind, datetime.now(timezone.utc), since=oldest)
    op.execute("INSERT INTO incident_events SELECT * FROM incident_events_old")
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY incident_events.id")
    op.execute("DROP TABLE incident_events_old")   # its partitions with it
    for name, columns in indexes:
        op.execute(f"CREATE INDEX {name} ON incident_events ({', '.join(columns)})")
