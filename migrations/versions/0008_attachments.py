"""case_attachments: photos and links attached to a case at its report, resolve or verification
(issue 14 item 4); a photo's files live in the media store (CITYOPS_MEDIA_DIR), a link keeps its URL.

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa

revision, down_revision = '0008', '0007'
branch_labels = depends_on = None


def upgrade() -> None:
    op.create_table('case_attachments',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('incident_id', sa.Integer(), nullable=False),
                    sa.Column('event_id', sa.Integer(), nullable=True),
                    sa.Column('stage', sa.String(length=16), nullable=False),
                    sa.Column('kind', sa.String(length=8), nullable=False),
                    sa.Column('mime', sa.String(length=40), nullable=False),
                    sa.Column('name', sa.String(length=120), nullable=False),
                    sa.Column('url', sa.String(length=500), nullable=True),
                    sa.Column('storage_key', sa.String(length=80), nullable=True),
                    sa.Column('thumb_key', sa.String(length=80), nullable=True),
                    sa.Column('size', sa.Integer(), nullable=False),
                    sa.Column('width', sa.Integer(), nullable=True),
                    sa.Column('height', sa.Integer(), nullable=True),
                    sa.Column('sha256', sa.String(length=64), nullable=True),
                    sa.Column('created_by', sa.String(length=120), nullable=False),
                    sa.Column('created_at', sa.DateTime(), nullable=False),
                    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id']),
                    sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_case_attachments_incident', 'case_attachments', ['incident_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_case_attachments_incident', table_name='case_attachments')
    op.drop_table('case_attachments')
