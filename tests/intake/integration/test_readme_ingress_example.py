"""The integrator guide's department-system example (docs/integrator/index.md) runs as written
against a real intake, on a server only open to its users (as `minqing up` runs it), with
the department's own seed file."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from sqlalchemy import select

from minqing.services.intake.store import reports
from minqing.services.natsconfig import nats_users
from minqing.shared.embedded import EmbeddedNats
from minqing.shared.service.settings import Settings
from tests.support.harness import isolated_settings
from tests.support.ingress import running_intake
from tests.support.paths import ROOT

GUIDE = ROOT / "docs" / "integrator" / "index.md"


def example() -> str:
    """The first Python block of the guide, before its first subsection."""
    section = GUIDE.read_text().split("# Integrating a department system", 1)[1]
    section = section.split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, "the guide has no python example"
    return found.group(1)


async def test_the_readme_example_reports_a_matter_and_reads_its_outcome(
    database_url: str, tmp_path: Path
) -> None:
    # The example uses the default ingress and outcome subjects; only this test does.
    settings = isolated_settings(
        "nats://unused",
        database_url,
        ingress_stream_name="MINQING_INGRESS",
        ingress_subject_prefix="minqing.ingress",
        outcomes_stream_name="MINQING_OUTCOMES",
        outcomes_subject_prefix="minqing.outcomes",
    )
    server = EmbeddedNats(tmp_path / "nats", users=nats_users(settings))
    with server:
        settings = settings.model_copy(
            update={
                "nats_url": server.url,
                "nats_credentials": server.credentials_of("service", "intake"),
            }
        )
        seed = server.credentials_of("department", "hotline_12345")
        await _run_example(settings, server.url, seed)


async def _run_example(settings: Settings, nats_url: str, seed: Path) -> None:
    async with running_intake(settings) as intake:
        env = {**os.environ, "MINQING_NATS_URL": nats_url, "NATS_SEED": str(seed)}
        for created in ("True", "False"):  # the same ticket twice: the same matter
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                example(),
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await asyncio.wait_for(process.communicate(), 60)
            text = output.decode()
            assert process.returncode == 0, text
            assert "stored as message" in text
            assert f"(created: {created})" in text, text
        issue_id = re.search(r"accepted: matter (\w+)", text)
        assert issue_id
        async with intake.runtime.sessions() as session:
            row = (
                await session.execute(
                    select(reports.c.issue_id, reports.c.source, reports.c.village).where(
                        reports.c.external_ref == "HL-2026-000123"
                    )
                )
            ).one()
        assert tuple(row) == (issue_id.group(1), "hotline_12345", "sanqi")
