"""The initial metadata store: MLMD's data model plus time series blocks.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "time_series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("context_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_step", sa.BigInteger(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("steps", sa.LargeBinary(), nullable=False),
        sa.Column("wall_times", sa.LargeBinary(), nullable=False),
        sa.Column("values", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_time_series")),
    )
    op.create_index(
        op.f("ix_time_series_context_id_name"), "time_series", ["context_id", "name"], unique=False
    )
    op.create_table(
        "types",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_types")),
        sa.UniqueConstraint("kind", "name", name=op.f("uq_types_kind_name")),
    )
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("create_time", sa.Float(), nullable=False),
        sa.Column("update_time", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["type_id"], ["types.id"], name=op.f("fk_artifacts_type_id_types")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts")),
        sa.UniqueConstraint("type_id", "name", name=op.f("uq_artifacts_type_id_name")),
    )
    op.create_index(op.f("ix_artifacts_create_time"), "artifacts", ["create_time"], unique=False)
    op.create_index(op.f("ix_artifacts_sha256"), "artifacts", ["sha256"], unique=False)
    op.create_table(
        "contexts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("create_time", sa.Float(), nullable=False),
        sa.Column("update_time", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["type_id"], ["types.id"], name=op.f("fk_contexts_type_id_types")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contexts")),
        sa.UniqueConstraint("type_id", "name", name=op.f("uq_contexts_type_id_name")),
    )
    op.create_index(op.f("ix_contexts_create_time"), "contexts", ["create_time"], unique=False)
    op.create_table(
        "executions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("start_time", sa.Float(), nullable=True),
        sa.Column("end_time", sa.Float(), nullable=True),
        sa.Column("create_time", sa.Float(), nullable=False),
        sa.Column("update_time", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["type_id"], ["types.id"], name=op.f("fk_executions_type_id_types")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_executions")),
        sa.UniqueConstraint("type_id", "name", name=op.f("uq_executions_type_id_name")),
    )
    op.create_index(op.f("ix_executions_create_time"), "executions", ["create_time"], unique=False)
    op.create_table(
        "type_properties",
        sa.Column("type_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("data_type", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["type_id"],
            ["types.id"],
            name=op.f("fk_type_properties_type_id_types"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("type_id", "name", name=op.f("pk_type_properties")),
    )
    op.create_table(
        "artifact_properties",
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("is_custom", sa.Boolean(), nullable=False),
        sa.Column("value_type", sa.String(length=16), nullable=False),
        sa.Column("int_value", sa.BigInteger(), nullable=True),
        sa.Column("double_value", sa.Float(), nullable=True),
        sa.Column("string_value", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["artifacts.id"],
            name=op.f("fk_artifact_properties_owner_id_artifacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "owner_id", "name", "is_custom", name=op.f("pk_artifact_properties")
        ),
    )
    op.create_index(
        op.f("ix_artifact_properties_name_string_value"),
        "artifact_properties",
        ["name", "string_value"],
        unique=False,
    )
    op.create_table(
        "associations",
        sa.Column("context_id", sa.Integer(), nullable=False),
        sa.Column("execution_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["context_id"],
            ["contexts.id"],
            name=op.f("fk_associations_context_id_contexts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name=op.f("fk_associations_execution_id_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("context_id", "execution_id", name=op.f("pk_associations")),
    )
    op.create_index(
        op.f("ix_associations_execution_id"), "associations", ["execution_id"], unique=False
    )
    op.create_table(
        "attributions",
        sa.Column("context_id", sa.Integer(), nullable=False),
        sa.Column("artifact_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["artifacts.id"],
            name=op.f("fk_attributions_artifact_id_artifacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["context_id"],
            ["contexts.id"],
            name=op.f("fk_attributions_context_id_contexts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("context_id", "artifact_id", name=op.f("pk_attributions")),
    )
    op.create_index(
        op.f("ix_attributions_artifact_id"), "attributions", ["artifact_id"], unique=False
    )
    op.create_table(
        "context_properties",
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("is_custom", sa.Boolean(), nullable=False),
        sa.Column("value_type", sa.String(length=16), nullable=False),
        sa.Column("int_value", sa.BigInteger(), nullable=True),
        sa.Column("double_value", sa.Float(), nullable=True),
        sa.Column("string_value", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["contexts.id"],
            name=op.f("fk_context_properties_owner_id_contexts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "owner_id", "name", "is_custom", name=op.f("pk_context_properties")
        ),
    )
    op.create_index(
        op.f("ix_context_properties_name_string_value"),
        "context_properties",
        ["name", "string_value"],
        unique=False,
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("artifact_id", sa.Integer(), nullable=False),
        sa.Column("execution_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=True),
        sa.Column("time", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["artifacts.id"],
            name=op.f("fk_events_artifact_id_artifacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name=op.f("fk_events_execution_id_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index(op.f("ix_events_artifact_id"), "events", ["artifact_id"], unique=False)
    op.create_index(op.f("ix_events_execution_id"), "events", ["execution_id"], unique=False)
    op.create_table(
        "execution_properties",
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("is_custom", sa.Boolean(), nullable=False),
        sa.Column("value_type", sa.String(length=16), nullable=False),
        sa.Column("int_value", sa.BigInteger(), nullable=True),
        sa.Column("double_value", sa.Float(), nullable=True),
        sa.Column("string_value", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["executions.id"],
            name=op.f("fk_execution_properties_owner_id_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "owner_id", "name", "is_custom", name=op.f("pk_execution_properties")
        ),
    )
    op.create_index(
        op.f("ix_execution_properties_name_string_value"),
        "execution_properties",
        ["name", "string_value"],
        unique=False,
    )
    op.create_table(
        "parent_contexts",
        sa.Column("child_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["contexts.id"],
            name=op.f("fk_parent_contexts_child_id_contexts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["contexts.id"],
            name=op.f("fk_parent_contexts_parent_id_contexts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("child_id", "parent_id", name=op.f("pk_parent_contexts")),
    )
    op.create_index(
        op.f("ix_parent_contexts_parent_id"), "parent_contexts", ["parent_id"], unique=False
    )
