"""report spreads: each operator's exact day medians kept, and histogram counts in their index

report_spread: median and 90th percentile per metric, day, operator and inbox (0: all inboxes),
filled here from the samples already folded; the rollup keeps it from then on.
ix_report_histogram_counts: a range's bucket counts read from the index alone.

Revision ID: 0022
Revises: 0021
"""
from collections.abc import Sequence
from datetime import date
from itertools import groupby

import sqlalchemy as sa
from alembic import op

revision: str = '0022'
down_revision: str | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    spread = op.create_table('report_spread',
    sa.Column('metric', sa.String(length=20), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('user_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('inbox_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('p50', sa.Float(), nullable=False),
    sa.Column('p90', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('metric', 'day', 'user_id', 'inbox_id', name=op.f('pk_report_spread')),
    )
    op.create_index('ix_report_histogram_counts', 'report_histogram',
                    ['metric', 'day', 'user_id', 'bucket', 'n'], unique=False)
    _fill_spreads(spread)


def downgrade() -> None:
    op.drop_index('ix_report_histogram_counts', table_name='report_histogram')
    op.drop_table('report_spread')


def _fill_spreads(spread: sa.Table) -> None:
    """The spreads of the samples folded so far, one operator-day at a time."""
    rows = op.get_bind().execute(sa.text(
        "SELECT metric, day, user_id, inbox_id, seconds FROM report_sample WHERE user_id != 0 "
        "ORDER BY metric, day, user_id, seconds"))
    batch: list[dict[str, object]] = []
    for (metric, day, user_id), group in groupby(rows, key=lambda row: tuple(row[:3])):
        samples = [(row[3], row[4]) for row in group]
        per_inbox: dict[int, list[float]] = {}
        for inbox_id, seconds in samples:
            per_inbox.setdefault(inbox_id, []).append(seconds)
        for inbox_id, values in [(0, [s for _, s in samples]), *per_inbox.items()]:
            batch.append({'metric': metric, 'day': _day(day), 'user_id': user_id, 'inbox_id': inbox_id,
                          'n': len(values), 'p50': _percentile(values, 50),
                          'p90': _percentile(values, 90)})
        if len(batch) >= 5000:
            op.bulk_insert(spread, batch)
            batch = []
    if batch:
        op.bulk_insert(spread, batch)


def _day(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def _percentile(ordered: list[float], percent: int) -> float:
    # As the reports compute it (percentile_cont): between the two ranks around the position.
    position = (len(ordered) - 1) * percent / 100
    low = int(position)
    above = ordered[min(low + 1, len(ordered) - 1)]
    return ordered[low] + (position - low) * (above - ordered[low])
