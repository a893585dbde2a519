"""Bulk statements honour a schema_translate_map, as Core statements do."""

from __future__ import annotations

from sqlalchemy import Column, MetaData, Table, Text

from minqing.shared.persistence.bulk import insert_sql, plain_insert_sql, translate_schemas

_TABLE = Table(
    "issues",
    MetaData(schema="projection"),
    Column("issue_id", Text, primary_key=True),
    Column("projection", Text),  # a column named like the schema stays as it is
    Column("title", Text),
)
_MAP = {"projection": "projection_rebuild"}


def test_the_table_is_written_in_the_translated_schema() -> None:
    sql = translate_schemas(insert_sql(_TABLE, "issue_id", update=True), _MAP)

    assert sql.startswith("insert into projection_rebuild.issues (")
    assert '"projection" = excluded."projection"' in sql
    assert sql.count("projection_rebuild") == 1


def test_only_whole_schema_names_that_qualify_a_table_are_translated() -> None:
    sql = (
        "select p.x from projection.events p join otherprojection.t on true "
        "join projection.issues using (issue_id) where p.projection = 'projection'"
    )

    assert translate_schemas(sql, _MAP) == (
        "select p.x from projection_rebuild.events p join otherprojection.t on true "
        "join projection_rebuild.issues using (issue_id) where p.projection = 'projection'"
    )


def test_no_map_leaves_the_text_alone() -> None:
    sql = plain_insert_sql(_TABLE, ["issue_id", "title"])

    assert translate_schemas(sql, None) is sql
    assert translate_schemas(sql, {}) is sql
    assert translate_schemas(sql, {None: "elsewhere"}) == sql  # the default schema: unused
    assert translate_schemas(sql, {"intake": "x"}) == sql


def test_several_schemas_translate_each_to_its_own() -> None:
    sql = "insert into a.t select * from b.t"

    assert translate_schemas(sql, {"a": "a2", "b": "b2"}) == "insert into a2.t select * from b2.t"
