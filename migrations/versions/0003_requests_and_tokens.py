"""case requests (a department's extend/suspend awaiting a dispatcher), token scopes and expiry,
per-user session epoch ("log out everywhere"), feed-run owner and heartbeat (a killed run is
closed as failed at the next start)

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('case_requests',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('incident_id', sa.Integer(), nullable=False),
                    sa.Column('kind', sa.String(length=20), nullable=False),
                    sa.Column('status', sa.String(length=16), nullable=False),
                    sa.Column('hours', sa.Float(), nullable=True),
                    sa.Column('reason', sa.String(length=40), nullable=True),
                    sa.Column('note', sa.Text(), nullable=False),
                    sa.Column('department_code', sa.String(length=40), nullable=True),
                    sa.Column('requested_by', sa.String(length=60), nullable=False),
                    sa.Column('requested_at', sa.DateTime(), nullable=False),
                    sa.Column('decided_by', sa.String(length=60), nullable=True),
                    sa.Column('decided_at', sa.DateTime(), nullable=True),
                    sa.Column('decision_note', sa.Text(), nullable=False),
                    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id']),
                    sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_case_requests_incident', 'case_requests', ['incident_id', 'id'])
    op.create_index('ix_case_requests_status', 'case_requests', ['status', 'requested_at'])
    with op.batch_alter_table('api_tokens') as batch_op:
        batch_op.add_column(sa.Column('feeds', sa.String(length=400), nullable=True))
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('users') as batch_op:
        batch_op.add_column(sa.Column('session_epoch', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('feed_runs') as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('feed_runs') as batch_op:
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('owner')
    with op.batch_alter_table('users') as batch_op:
        batch_op.drop_column('session_epoch')
    with op.batch_alter_table('api_tokens') as batch_op:
        batch_op.drop_column('expires_at')
        batch_op.drop_column('feeds')
    op.drop_index('ix_case_requests_status', table_name='case_requests')
    op.drop_index('ix_case_requests_incident', table_name='case_requests')
    op.drop_table('case_requests')
