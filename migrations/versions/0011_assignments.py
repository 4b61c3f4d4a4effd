"""主办 / 协办 (issue 14 item 3): ``case_assignments``, one row per assisting department of a dispatch
(the lead stays ``incidents.department_code``), with its own 签收 and reply deadlines, sign-for and
reply, and when the part ended (the case was returned, reopened, voided or merged, or the department
became the lead). Self-contained: a new table and its indexes, nothing else changes.

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa

revision, down_revision = '0011', '0010'
branch_labels = depends_on = None


def upgrade() -> None:
    op.create_table(
        'case_assignments',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('incident_id', sa.Integer(), sa.ForeignKey('incidents.id'), nullable=False),
        sa.Column('department_code', sa.String(40), nullable=False),
        sa.Column('dispatched_at', sa.DateTime(), nullable=False),
        sa.Column('dispatched_by', sa.String(60), nullable=False, server_default=''),
        sa.Column('sign_due', sa.DateTime(), nullable=False),
        sa.Column('signed_at', sa.DateTime(), nullable=True),
        sa.Column('signed_by', sa.String(60), nullable=True),
        sa.Column('reply_due', sa.DateTime(), nullable=False),
        sa.Column('replied_at', sa.DateTime(), nullable=True),
        sa.Column('replied_by', sa.String(60), nullable=True),
        sa.Column('reply_note', sa.Text(), nullable=False, server_default=''),
        sa.Column('ended_at', sa.DateTime(), nullable=True),
    )
    op.create_index('ix_case_assignments_incident', 'case_assignments', ['incident_id', 'id'])
    op.create_index('ix_case_assignments_department_live', 'case_assignments',
                    ['department_code', 'ended_at', 'replied_at'])
    op.create_index('ix_case_assignments_reply_due', 'case_assignments', ['reply_due'])


def downgrade() -> None:
    op.drop_table('case_assignments')
