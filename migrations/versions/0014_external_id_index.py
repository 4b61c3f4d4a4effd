"""Open311 answers a request by its source's id (issue 15 item 4): ``requests/<id>`` and the
``service_request_id`` filter look cases up by ``external_id`` alone, whatever their source. The
unique (source, external_id) index cannot serve that (source leads), so an index of its own.

Revision ID: 0014
Revises: 0013
"""
from alembic import op

revision, down_revision = '0014', '0013'
branch_labels = depends_on = None


def upgrade() -> None:
    op.create_index('ix_incidents_external_id', 'incidents', ['external_id'])


def downgrade() -> None:
    op.drop_index('ix_incidents_external_id', table_name='incidents')
