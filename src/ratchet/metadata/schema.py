"""The tables of the metadata store, as SQLAlchemy Core objects used by the queries.

Owns the current shape of the database. The history of that shape lives in
`migrations/` (Alembic, forward only); a change here needs a new migration there.
Times are float seconds since the epoch (UTC) so range queries stay plain numbers.
"""

from __future__ import annotations

import sqlalchemy as sa

from ratchet.metadata.records import Kind

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

types = sa.Table(
    "types",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.UniqueConstraint("kind", "name"),
)

type_properties = sa.Table(
    "type_properties",
    metadata,
    sa.Column("type_id", sa.ForeignKey("types.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("data_type", sa.String(16), nullable=False),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("type_id", sa.ForeignKey("types.id"), nullable=False),
    sa.Column("name", sa.String(255)),
    sa.Column("uri", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), index=True),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("create_time", sa.Float, nullable=False, index=True),
    sa.Column("update_time", sa.Float, nullable=False),
    sa.UniqueConstraint("type_id", "name"),
)

executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("type_id", sa.ForeignKey("types.id"), nullable=False),
    sa.Column("name", sa.String(255)),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("start_time", sa.Float),
    sa.Column("end_time", sa.Float),
    sa.Column("create_time", sa.Float, nullable=False, index=True),
    sa.Column("update_time", sa.Float, nullable=False),
    sa.UniqueConstraint("type_id", "name"),
)

contexts = sa.Table(
    "contexts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("type_id", sa.ForeignKey("types.id"), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("create_time", sa.Float, nullable=False, index=True),
    sa.Column("update_time", sa.Float, nullable=False),
    sa.UniqueConstraint("type_id", "name"),
)


def _property_table(owner: sa.Table) -> sa.Table:
    """One property table per record kind, so each keeps a real foreign key."""
    return sa.Table(
        f"{owner.name[:-1]}_properties",
        metadata,
        sa.Column(
            "owner_id", sa.ForeignKey(f"{owner.name}.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("is_custom", sa.Boolean, primary_key=True),
        sa.Column("value_type", sa.String(16), nullable=False),
        sa.Column("int_value", sa.BigInteger),
        sa.Column("double_value", sa.Float),
        sa.Column("string_value", sa.Text),
        sa.Index(None, "name", "string_value"),
    )


artifact_properties = _property_table(artifacts)
execution_properties = _property_table(executions)
context_properties = _property_table(contexts)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "artifact_id",
        sa.ForeignKey("artifacts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column(
        "execution_id",
        sa.ForeignKey("executions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("path", sa.String(255)),
    sa.Column("time", sa.Float, nullable=False),
)

attributions = sa.Table(
    "attributions",
    metadata,
    sa.Column("context_id", sa.ForeignKey("contexts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column(
        "artifact_id",
        sa.ForeignKey("artifacts.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)

associations = sa.Table(
    "associations",
    metadata,
    sa.Column("context_id", sa.ForeignKey("contexts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column(
        "execution_id",
        sa.ForeignKey("executions.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)

parent_contexts = sa.Table(
    "parent_contexts",
    metadata,
    sa.Column("child_id", sa.ForeignKey("contexts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column(
        "parent_id",
        sa.ForeignKey("contexts.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)

# A metric's points over steps, stored as blocks of packed little-endian arrays (int64
# steps, float64 wall times and values): one row per metric per flush rather than one
# per point, which is what lets logging outrun a row insert per point. No foreign key:
# this is the hottest insert path, and deleting a context removes its blocks explicitly.
time_series = sa.Table(
    "time_series",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("context_id", sa.Integer, nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("first_step", sa.BigInteger, nullable=False),
    sa.Column("last_step", sa.BigInteger, nullable=False),
    sa.Column("steps", sa.LargeBinary, nullable=False),
    sa.Column("wall_times", sa.LargeBinary, nullable=False),
    sa.Column("values", sa.LargeBinary, nullable=False),
    sa.Index(None, "context_id", "name"),
)

# Optuna's journal of tuning operations (`ratchet.tuning.storage`): one JSON log per row.
# `seq` is the log's position, written dense and in commit order by the appender (no
# autoincrement: sequence values can commit out of order or leave gaps, and Optuna's
# replay counts logs by position).
tuning_journal = sa.Table(
    "tuning_journal",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("log", sa.Text, nullable=False),
)

RECORD_TABLES: dict[Kind, sa.Table] = {
    Kind.ARTIFACT: artifacts,
    Kind.EXECUTION: executions,
    Kind.CONTEXT: contexts,
}
PROPERTY_TABLES: dict[Kind, sa.Table] = {
    Kind.ARTIFACT: artifact_properties,
    Kind.EXECUTION: execution_properties,
    Kind.CONTEXT: context_properties,
}
