"""`minqing db revision` drafts a service's next migration from its tables in store.py."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from minqing.services.cli import app
from minqing.shared.domain.ids import new_id
from minqing.shared.persistence.migrations import migrations_dir, revision, upgrade
from minqing.shared.service.settings import ServiceName
from tests.support.harness import drop_database, with_database


def _versions_copy(service: ServiceName, tmp_path: Path) -> Path:
    """The service's revisions, copied so that a test can add one without touching the repo."""
    versions = tmp_path / "versions"
    shutil.copytree(migrations_dir(service) / "versions", versions)
    return versions


def _head(versions: Path) -> int:
    """The number of the newest revision file (``0001_initial.py`` is 1)."""
    return max(int(path.name.split("_", 1)[0]) for path in versions.glob("[0-9]*_*.py"))


def _assigned(path: Path, name: str) -> str | None:
    """The string assigned to ``name`` at the top of a revision file (either quotes)."""
    found = re.search(rf"^{name} = ['\"](\w+)['\"]$", path.read_text(), re.MULTILINE)
    return found.group(1) if found else None


def _upgrade_body(path: Path) -> str:
    source = path.read_text()
    return source[source.index("def upgrade()") : source.index("def downgrade()")]


async def _execute(url: str, statement: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("service", ["intake", "projection"])
async def test_autogenerate_on_a_migrated_database_finds_nothing_to_do(
    database_url: str, service: ServiceName, tmp_path: Path
) -> None:
    versions = _versions_copy(service, tmp_path)
    head = _head(versions)
    path = await asyncio.to_thread(
        revision, database_url, service, "nothing", autogenerate=True, versions_dir=versions
    )
    assert path == versions / f"{head + 1:04d}_nothing.py"
    assert _assigned(path, "revision") == f"{service}_{head + 1:04d}"
    assert _assigned(path, "down_revision") == f"{service}_{head:04d}"
    assert "op." not in _upgrade_body(path)


async def test_autogenerate_drafts_the_table_the_database_lacks(
    database_url: str, tmp_path: Path
) -> None:
    await _execute(database_url, "drop table intake.reporter_contacts")
    versions = _versions_copy("intake", tmp_path)
    path = await asyncio.to_thread(
        revision, database_url, "intake", "contacts again", autogenerate=True, versions_dir=versions
    )
    upgrade_body = _upgrade_body(path)
    assert re.search(r"op\.create_table\(\s*['\"]reporter_contacts['\"]", upgrade_body)
    assert re.search(r"schema=['\"]intake['\"]", upgrade_body)
    assert upgrade_body.count("op.") == 1  # nothing from the other services' schemas

    await asyncio.to_thread(upgrade, database_url, "intake", versions_dir=versions)
    await _execute(database_url, "select name, phone from intake.reporter_contacts")


def test_db_revision_command_numbers_revisions_in_sequence(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINQING_DATABASE_URL", database_url)
    versions = _versions_copy("followup", tmp_path)
    head = _head(versions)
    before = {p.name for p in versions.glob("*.py")}
    runner = CliRunner()
    for message in ("first step", "second step"):
        result = runner.invoke(
            app, ["db", "revision", "followup", "-m", message, "--versions-dir", str(versions)]
        )
        assert result.exit_code == 0, result.output
    first, second = f"{head + 1:04d}_first_step.py", f"{head + 2:04d}_second_step.py"
    assert {p.name for p in versions.glob("*.py")} - before == {first, second}
    assert _assigned(versions / second, "revision") == f"followup_{head + 2:04d}"
    assert _assigned(versions / second, "down_revision") == f"followup_{head + 1:04d}"


def test_db_commands_refuse_an_unknown_service() -> None:
    result = CliRunner().invoke(app, ["db", "revision", "billing", "-m", "x"])
    assert result.exit_code != 0
    assert "unknown service" in result.output


async def _scalar(url: str, statement: str) -> object:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(text(statement))
    finally:
        await engine.dispose()


async def test_db_upgrade_command_creates_the_database_and_one_services_schema(
    server_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = with_database(server_db_url, f"mq_upgrade_{new_id().lower()}")
    monkeypatch.setenv("MINQING_DATABASE_URL", url)
    try:
        result = await asyncio.to_thread(CliRunner().invoke, app, ["db", "upgrade", "assignment"])
        assert result.exit_code == 0, result.output
        version = await _scalar(url, "select version_num from assignment.alembic_version")
        assert version == f"assignment_{_head(migrations_dir('assignment') / 'versions'):04d}"
        assert await _scalar(url, "select to_regnamespace('intake')") is None
    finally:
        await drop_database(server_db_url, make_url(url).database or "")


def test_db_upgrade_command_needs_a_service_for_another_revision() -> None:
    result = CliRunner().invoke(app, ["db", "upgrade", "--revision", "base"])
    assert result.exit_code != 0
    assert "needs a service" in result.output
