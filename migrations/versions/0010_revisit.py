"""先行联系, 处置结果 and 回访 (issue 14 item 5): a case's first contact with the citizen before any
resolve (``first_contacted_at``), its final resolve's outcome (``resolve_outcome``: solved = 实际解决,
explained = 解释说明), its first 回访 and the last 回访 of its current closure with the result
(``first_revisited_at``, ``revisited_at``, ``revisit_result``); the fact rows carry the first
contact, the outcome and the first 回访 (先行联系率, 实际解决率, 回访率).

Backfilled from the events: the first ``contact`` with no ``resolve`` before it and the first
``revisit`` (``flask facts rebuild`` recomputes both the same way, incidents.facts), the final
resolve's outcome (none named — every one before this migration — is 实际解决, the default of
``services.as_outcome``), the last ``revisit`` since the last closure, and ``revised_at`` where a
``revisit`` sent the case back (重办: a revising step 0007 did not know).

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

revision, down_revision = '0010', '0009'
branch_labels = depends_on = None

_INCIDENTS = ('first_contacted_at', 'resolve_outcome', 'first_revisited_at', 'revisited_at', 'revisit_result')
_FACTS = ('first_contacted_at', 'resolve_outcome', 'first_revisited_at')


def upgrade() -> None:
    # every ``x.action || ''`` below: kept off the (action, at) index, which SQLite would walk for every
    # case; the case's own events come from the (incident_id, id) index (see 0004)
    # nullable columns: plain ADD COLUMN on both databases (see 0009)
    for table, columns in (('incidents', _INCIDENTS), ('case_facts', _FACTS)):
        for column in columns:
            kind = sa.String(16) if column in ('resolve_outcome', 'revisit_result') else sa.DateTime()
            op.add_column(table, sa.Column(column, kind, nullable=True))
    pg = op.get_bind().dialect.name == "postgresql"
    if pg:
        # statistics first: autovacuum never analyses a partitioned parent (incident_events), and the
        # migrations before this one in the same run may have just rewritten incidents; without them
        # PostgreSQL answers each case's MIN/MAX(v.at) below by walking the whole ``at`` index
        # (6 000 demo cases: 12.5 s → 0.2 s for one statement)
        op.execute("ANALYZE incidents, incident_events")
    op.execute("""
        UPDATE incidents SET first_contacted_at = (
            SELECT MIN(c.at) FROM incident_events c
            WHERE c.incident_id = incidents.id AND c.action || '' = 'contact'
              AND NOT EXISTS (SELECT 1 FROM incident_events r
                              WHERE r.incident_id = c.incident_id AND r.action || '' = 'resolve'
                                AND (r.at < c.at OR (r.at = c.at AND r.id < c.id))))
        WHERE EXISTS (SELECT 1 FROM incident_events c WHERE c.incident_id = incidents.id AND c.action || '' = 'contact')""")
    op.execute("""
        UPDATE incidents SET first_revisited_at = (
            SELECT MIN(v.at) FROM incident_events v WHERE v.incident_id = incidents.id AND v.action || '' = 'revisit')
        WHERE EXISTS (SELECT 1 FROM incident_events v WHERE v.incident_id = incidents.id AND v.action || '' = 'revisit')""")

    def field(name: str, alias: str) -> str:
        return f"({alias}.payload::json ->> '{name}')" if pg else f"json_extract({alias}.payload, '$.{name}')"
    # the final resolve's outcome (none named: solved)
    op.execute(f"""
        UPDATE incidents SET resolve_outcome = COALESCE((
            SELECT {field('outcome', 'r')} FROM incident_events r
            WHERE r.incident_id = incidents.id AND r.action || '' = 'resolve' ORDER BY r.at DESC, r.id DESC LIMIT 1), 'solved')
        WHERE resolved_at IS NOT NULL AND state IN ('resolved', 'closed')""")
    # the last 回访 since the last closure, with its result
    since = "v.incident_id = incidents.id AND v.action || '' = 'revisit' AND v.at >= incidents.last_closed_at"
    op.execute(f"""
        UPDATE incidents SET
            revisited_at = (SELECT MAX(v.at) FROM incident_events v WHERE {since}),
            revisit_result = (SELECT {field('result', 'v')} FROM incident_events v WHERE {since}
                              ORDER BY v.at DESC, v.id DESC LIMIT 1)
        WHERE last_closed_at IS NOT NULL AND EXISTS (SELECT 1 FROM incident_events v WHERE {since})""")
    # a 回访 that sent the case back (不满意 → 重办) revises it (0007 knew no such event)
    redo = "d.incident_id = incidents.id AND d.action || '' = 'revisit' AND d.to_state <> 'closed'"
    op.execute(f"""
        UPDATE incidents SET revised_at = (SELECT MAX(d.at) FROM incident_events d WHERE {redo})
        WHERE EXISTS (SELECT 1 FROM incident_events d WHERE {redo})
          AND (revised_at IS NULL OR revised_at < (SELECT MAX(d.at) FROM incident_events d WHERE {redo}))""")
    op.execute("""
        UPDATE case_facts SET
            first_contacted_at = (SELECT i.first_contacted_at FROM incidents i WHERE i.id = case_facts.incident_id),
            resolve_outcome = (SELECT i.resolve_outcome FROM incidents i WHERE i.id = case_facts.incident_id),
            first_revisited_at = (SELECT i.first_revisited_at FROM incidents i WHERE i.id = case_facts.incident_id),
            revised_at = (SELECT i.revised_at FROM incidents i WHERE i.id = case_facts.incident_id)""")


def downgrade() -> None:
    # plain ALTER TABLE … DROP COLUMN (see 0009)
    for table, columns in (('case_facts', _FACTS), ('incidents', _INCIDENTS)):
        for column in reversed(columns):
            op.execute(f'ALTER TABLE {table} DROP COLUMN {column}')
