"""revised_at: the time of a case's last revising action (a return, reassignment, extension,
suspension, resume, void, merge, rework or reopen — incidents.model.REVISING_ACTIONS). A KPI at an
earlier instant reads a fact row whenever the case was not revised since (its later milestones
masked) instead of replaying every case written since, so the fact rows lose ``updated_at`` (and
its index) for ``revised_at`` (NULL when never revised: its index holds only the revised few), and
gain an index on the final resolve (the cases running at an earlier instant that are resolved now).

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision, down_revision = '0007', '0006'
branch_labels = depends_on = None

# incidents.model.REVISING_ACTIONS and the approvals (which apply an extension or a suspension),
# as they were when this migration was written
_REVISING = ('return', 'reassign', 'extend', 'suspend', 'resume', 'void', 'merge', 'verify_fail', 'reopen',
             'approve')


def upgrade() -> None:
    with op.batch_alter_table('incidents') as batch_op:
        batch_op.add_column(sa.Column('revised_at', sa.DateTime(), nullable=True))
    actions = ", ".join(f"'{a}'" for a in _REVISING)
    # one grouped pass over the events (a correlated subquery per case is minutes at 10M cases)
    op.execute("UPDATE incidents SET revised_at = r.at FROM (SELECT incident_id, MAX(at) AS at FROM incident_events "
               f"WHERE action IN ({actions}) GROUP BY incident_id) AS r WHERE r.incident_id = incidents.id")
    op.drop_index('ix_case_facts_updated_at', table_name='case_facts')
    with op.batch_alter_table('case_facts') as batch_op:
        batch_op.add_column(sa.Column('revised_at', sa.DateTime(), nullable=True))
    op.execute("UPDATE case_facts SET revised_at = i.revised_at FROM incidents i "
               "WHERE i.id = case_facts.incident_id AND i.revised_at IS NOT NULL")
    with op.batch_alter_table('case_facts') as batch_op:
        batch_op.drop_column('updated_at')
    op.create_index('ix_case_facts_revised_at', 'case_facts', ['revised_at'])
    op.create_index('ix_case_facts_resolved_at', 'case_facts', ['resolved_at'])
    # statistics for the new column: without them PostgreSQL guesses a third of the rows for any
    # range and walks the revised_at index instead of the milestones'
    op.execute('ANALYZE case_facts')


def downgrade() -> None:
    op.drop_index('ix_case_facts_resolved_at', table_name='case_facts')
    op.drop_index('ix_case_facts_revised_at', table_name='case_facts')
    with op.batch_alter_table('case_facts') as batch_op:
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(), nullable=True))
    op.execute("UPDATE case_facts SET updated_at = (SELECT i.updated_at FROM incidents i "
               "WHERE i.id = case_facts.incident_id)")
    with op.batch_alter_table('case_facts') as batch_op:
        batch_op.alter_column('updated_at', existing_type=sa.DateTime(), nullable=False)
        batch_op.drop_column('revised_at')
    op.create_index('ix_case_facts_updated_at', 'case_facts', ['updated_at'])
    op.execute('ALTER TABLE incidents DROP COLUMN revised_at')
