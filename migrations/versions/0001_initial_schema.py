"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 16:41:17.715070
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('areas',
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('parent_code', sa.String(length=20), nullable=True),
    sa.Column('geometry', sa.Text(), nullable=False),
    sa.Column('centroid_lon', sa.Float(), nullable=False),
    sa.Column('centroid_lat', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    with op.batch_alter_table('areas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_areas_level'), ['level'], unique=False)
        batch_op.create_index(batch_op.f('ix_areas_parent_code'), ['parent_code'], unique=False)

    op.create_table('categories',
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('major_code', sa.String(length=20), nullable=False),
    sa.Column('major_name', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('name_en', sa.String(length=120), nullable=False),
    sa.Column('time_limit', sa.Float(), nullable=False),
    sa.Column('time_unit', sa.String(length=16), nullable=False),
    sa.Column('dup_radius_m', sa.Float(), nullable=False),
    sa.Column('dup_window_h', sa.Float(), nullable=False),
    sa.Column('urgent', sa.Boolean(), nullable=False),
    sa.Column('demo_weight', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    with op.batch_alter_table('categories', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_categories_major_code'), ['major_code'], unique=False)

    op.create_table('departments',
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('name_en', sa.String(length=160), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('district_code', sa.String(length=20), nullable=True),
    sa.Column('parent_code', sa.String(length=40), nullable=True),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('feed_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('feed', sa.String(length=60), nullable=False),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('last_record_at', sa.DateTime(), nullable=True),
    sa.Column('received', sa.Integer(), nullable=False),
    sa.Column('inserted', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('quarantined', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('feed_runs', schema=None) as batch_op:
        batch_op.create_index('ix_feed_runs_feed_started', ['feed', 'started_at'], unique=False)

    op.create_table('incidents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('district_code', sa.String(length=20), nullable=True),
    sa.Column('grid_code', sa.String(length=20), nullable=True),
    sa.Column('category_code', sa.String(length=20), nullable=True),
    sa.Column('priority', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('state_before_suspend', sa.String(length=16), nullable=True),
    sa.Column('department_code', sa.String(length=40), nullable=True),
    sa.Column('reporter_name', sa.String(length=80), nullable=False),
    sa.Column('reporter_phone', sa.String(length=40), nullable=False),
    sa.Column('reported_at', sa.DateTime(), nullable=False),
    sa.Column('registered_at', sa.DateTime(), nullable=True),
    sa.Column('dispatched_at', sa.DateTime(), nullable=True),
    sa.Column('signed_at', sa.DateTime(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.Column('voided_at', sa.DateTime(), nullable=True),
    sa.Column('suspended_at', sa.DateTime(), nullable=True),
    sa.Column('allowed_hours', sa.Float(), nullable=True),
    sa.Column('warn_at', sa.DateTime(), nullable=True),
    sa.Column('deadline', sa.DateTime(), nullable=True),
    sa.Column('on_time', sa.Boolean(), nullable=True),
    sa.Column('void_reason', sa.String(length=40), nullable=True),
    sa.Column('duplicate_of', sa.Integer(), nullable=True),
    sa.Column('supervise_level', sa.Integer(), nullable=False),
    sa.Column('rework_count', sa.Integer(), nullable=False),
    sa.Column('return_count', sa.Integer(), nullable=False),
    sa.Column('reassign_count', sa.Integer(), nullable=False),
    sa.Column('extension_count', sa.Integer(), nullable=False),
    sa.Column('extension_hours', sa.Float(), nullable=False),
    sa.Column('suspended_hours', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('updated_by', sa.String(length=60), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source', 'external_id', name='uq_incidents_source_external_id')
    )
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index('ix_incidents_category_reported', ['category_code', 'reported_at'], unique=False)
        batch_op.create_index('ix_incidents_channel_reported', ['channel', 'reported_at'], unique=False)
        batch_op.create_index('ix_incidents_closed_at', ['closed_at'], unique=False)
        batch_op.create_index('ix_incidents_department_state', ['department_code', 'state'], unique=False)
        batch_op.create_index('ix_incidents_dispatched_at', ['dispatched_at'], unique=False)
        batch_op.create_index('ix_incidents_district_state', ['district_code', 'state'], unique=False)
        batch_op.create_index('ix_incidents_grid_state', ['grid_code', 'state'], unique=False)
        batch_op.create_index('ix_incidents_registered_at', ['registered_at'], unique=False)
        batch_op.create_index('ix_incidents_reported_at', ['reported_at'], unique=False)
        batch_op.create_index('ix_incidents_state_deadline', ['state', 'deadline'], unique=False)
        batch_op.create_index('ix_incidents_state_warn_at', ['state', 'warn_at'], unique=False)

    op.create_table('kpi_indicators',
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('name_en', sa.String(length=120), nullable=False),
    sa.Column('unit', sa.String(length=20), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('target', sa.Float(), nullable=True),
    sa.Column('period', sa.String(length=10), nullable=False),
    sa.Column('group', sa.String(length=40), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('meta',
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('service_rates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('department_code', sa.String(length=40), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('item_code', sa.String(length=40), nullable=False),
    sa.Column('item_name', sa.String(length=120), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('online', sa.Integer(), nullable=False),
    sa.Column('completed', sa.Integer(), nullable=False),
    sa.Column('on_time', sa.Integer(), nullable=False),
    sa.Column('rating_1', sa.Integer(), nullable=False),
    sa.Column('rating_2', sa.Integer(), nullable=False),
    sa.Column('rating_3', sa.Integer(), nullable=False),
    sa.Column('rating_4', sa.Integer(), nullable=False),
    sa.Column('rating_5', sa.Integer(), nullable=False),
    sa.Column('bad_rectified', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('department_code', 'day', 'item_code', name='uq_service_rates_dept_day_item')
    )
    with op.batch_alter_table('service_rates', schema=None) as batch_op:
        batch_op.create_index('ix_service_rates_day', ['day'], unique=False)

    op.create_table('demo_steps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('due_at', sa.DateTime(), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('demo_steps', schema=None) as batch_op:
        batch_op.create_index('ix_demo_steps_due', ['due_at'], unique=False)

    op.create_table('incident_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=60), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=True),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('department_code', sa.String(length=40), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('request_id', sa.String(length=80), nullable=True),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('request_id')
    )
    with op.batch_alter_table('incident_events', schema=None) as batch_op:
        batch_op.create_index('ix_incident_events_action_at', ['action', 'at'], unique=False)
        batch_op.create_index('ix_incident_events_at', ['at'], unique=False)
        batch_op.create_index('ix_incident_events_incident', ['incident_id', 'id'], unique=False)

    op.create_table('kpi_values',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('indicator_code', sa.String(length=40), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('dimension', sa.String(length=60), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['indicator_code'], ['kpi_indicators.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('indicator_code', 'period_start', 'dimension', name='uq_kpi_values_indicator_period_dim')
    )
    op.create_table('quarantine',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('feed_run_id', sa.Integer(), nullable=True),
    sa.Column('feed', sa.String(length=60), nullable=False),
    sa.Column('raw', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['feed_run_id'], ['feed_runs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.create_index('ix_quarantine_feed_status', ['feed', 'status'], unique=False)

    op.create_table('routing_rules',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('category_code', sa.String(length=20), nullable=False),
    sa.Column('area_code', sa.String(length=20), nullable=True),
    sa.Column('department_code', sa.String(length=40), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['department_code'], ['departments.code'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=60), nullable=False),
    sa.Column('display_name', sa.String(length=80), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('department_code', sa.String(length=40), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['department_code'], ['departments.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_id'), ['user_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_id'))

    op.drop_table('api_tokens')
    op.drop_table('users')
    op.drop_table('routing_rules')
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_index('ix_quarantine_feed_status')

    op.drop_table('quarantine')
    op.drop_table('kpi_values')
    with op.batch_alter_table('incident_events', schema=None) as batch_op:
        batch_op.drop_index('ix_incident_events_incident')
        batch_op.drop_index('ix_incident_events_at')
        batch_op.drop_index('ix_incident_events_action_at')

    op.drop_table('incident_events')
    with op.batch_alter_table('demo_steps', schema=None) as batch_op:
        batch_op.drop_index('ix_demo_steps_due')

    op.drop_table('demo_steps')
    with op.batch_alter_table('service_rates', schema=None) as batch_op:
        batch_op.drop_index('ix_service_rates_day')

    op.drop_table('service_rates')
    op.drop_table('meta')
    op.drop_table('kpi_indicators')
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_incidents_state_warn_at')
        batch_op.drop_index('ix_incidents_state_deadline')
        batch_op.drop_index('ix_incidents_reported_at')
        batch_op.drop_index('ix_incidents_registered_at')
        batch_op.drop_index('ix_incidents_grid_state')
        batch_op.drop_index('ix_incidents_district_state')
        batch_op.drop_index('ix_incidents_dispatched_at')
        batch_op.drop_index('ix_incidents_department_state')
        batch_op.drop_index('ix_incidents_closed_at')
        batch_op.drop_index('ix_incidents_channel_reported')
        batch_op.drop_index('ix_incidents_category_reported')

    op.drop_table('incidents')
    with op.batch_alter_table('feed_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_feed_runs_feed_started')

    op.drop_table('feed_runs')
    op.drop_table('departments')
    with op.batch_alter_table('categories', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_categories_major_code'))

    op.drop_table('categories')
    with op.batch_alter_table('areas', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_areas_parent_code'))
        batch_op.drop_index(batch_op.f('ix_areas_level'))

    op.drop_table('areas')

