"""Who may say what on NATS, against a real nats-server configured as `minqing up`
configures its own (``EmbeddedNats`` with every user of ``minqing nats-config``).

A refusal is what the server says: it answers a publish or subscription outside a user's
permissions with a permission violation (an asynchronous error in nats-py, noticed here
after a flush, which the server answers only after it has dealt with what came before),
and the streams are checked unchanged afterwards. The positive side runs the four
services, each with its own key, and a department system through a whole matter; the
server's log then shows no permission violation at all.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import stat
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import StreamInfo

from minqing.services.assignment.app import create_app as assignment_app
from minqing.services.followup.app import create_app as followup_app
from minqing.services.intake.app import create_app as intake_app
from minqing.services.natsconfig import nats_users
from minqing.services.projection.app import create_app as projection_app
from minqing.shared.contract.asyncapi import EMITTED_BY
from minqing.shared.contract.events import EVENT_CLASSES
from minqing.shared.embedded import EmbeddedNats
from minqing.shared.messaging.access import (
    ADMIN,
    connect_options,
    department_inbox,
    service_inbox,
)
from minqing.shared.messaging.streams import (
    dlq_stream_config,
    ensure_stream,
    ingress_stream_config,
    outcomes_stream_config,
    stream_config,
)
from minqing.shared.service.settings import SERVICES, Settings
from tests.support.harness import eventually, serve
from tests.support.identity import AS
from tests.support.ingress import report

DEPARTMENT = "grid_center"
OTHER = "hotline_12345"
VIOLATION = "permissions violation"
SETTLE_TURNS = 25  # 10 ms each


@dataclass
class Secured:
    """A server only open to the generated users, and the settings its streams follow."""

    settings: Settings
    server: EmbeddedNats

    def seed(self, role: str, name: str) -> Path:
        return self.server.credentials_of(role, name)

    def service_settings(self, service: str) -> Settings:
        return self.settings.model_copy(update={"nats_credentials": self.seed("service", service)})

    def streams(self) -> tuple[str, ...]:
        s = self.settings
        return (s.stream_name, s.ingress_stream_name, s.outcomes_stream_name, s.dlq_stream_name)

    def log(self) -> str:
        return self.server.log_path.read_text(errors="replace")


@dataclass
class User:
    """One connection as one user, with the permission violations the server reported."""

    nc: Client
    errors: list[str] = field(default_factory=list)

    async def _refused(self, verb: str, subject: str, since: int) -> bool:
        """Whether the server refused ``subject``: its answer to what came before the flush
        is in, and nats-py hands the error to the callback on its next turn or so."""
        await self.nc.flush(timeout=5)
        for _ in range(SETTLE_TURNS):
            # nats-py hands the server's message on in lower case.
            said = f'{VIOLATION} for {verb} to "{subject.lower()}"'
            if any(said in e.lower() for e in self.errors[since:]):
                return True
            await asyncio.sleep(0.01)
        return False

    async def publish(self, subject: str, body: bytes = b"{}") -> bool:
        """Publish; True if the server refused it."""
        since = len(self.errors)
        await self.nc.publish(subject, body)
        return not await self._refused("publish", subject, since)

    async def subscribe(self, subject: str) -> bool:
        """Subscribe (and leave again); True if the server let it."""
        since = len(self.errors)
        sub = await self.nc.subscribe(subject)
        allowed = not await self._refused("subscription", subject, since)
        await sub.unsubscribe()
        return allowed


@pytest.fixture
async def secured(settings: Settings, tmp_path: Path) -> AsyncIterator[Secured]:
    server = EmbeddedNats(tmp_path / "nats", users=nats_users(settings))
    with server:
        yield Secured(settings.model_copy(update={"nats_url": server.url}), server)


@pytest.fixture
async def users(secured: Secured) -> AsyncIterator[dict[str, User]]:
    """Connected as the operator, each service and two department systems."""
    async with AsyncExitStack() as stack:
        found: dict[str, User] = {}
        for role, name, inbox in [
            ("admin", ADMIN, service_inbox(ADMIN)),
            *[("service", s, service_inbox(s)) for s in SERVICES],
            ("department", DEPARTMENT, department_inbox(DEPARTMENT)),
            ("department", OTHER, department_inbox(OTHER)),
        ]:
            found[name] = user = User(None)  # type: ignore[arg-type]

            async def note(exc: Exception, user: User = user) -> None:
                user.errors.append(str(exc))

            user.nc = await nats.connect(
                secured.settings.nats_url,
                error_cb=note,
                **connect_options(secured.seed(role, name), inbox),
            )
            stack.push_async_callback(user.nc.close)
        # The streams as the services declare them, the canonical one holding one event.
        js = found[ADMIN].nc.jetstream()
        s = secured.settings
        for config in (stream_config(s), ingress_stream_config(s)):
            await ensure_stream(js, config)
        for config in (outcomes_stream_config(s), dlq_stream_config(s)):
            await ensure_stream(js, config)
        await js.publish(f"{s.subject_prefix}.issue.reported", b"{}", stream=s.stream_name)
        yield found


async def _stream_states(secured: Secured, admin: User) -> dict[str, tuple[int, object]]:
    js = admin.nc.jetstream()
    found: dict[str, tuple[int, object]] = {}
    for name in secured.streams():
        info: StreamInfo = await js.stream_info(name)
        found[name] = (info.state.messages, info.created)
    return found


async def test_an_anonymous_connection_is_refused(secured: Secured) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            secured.settings.nats_url,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            connect_timeout=2,
        )
    assert "authentication error" in secured.log()


async def test_a_key_that_is_not_configured_is_refused(secured: Secured, tmp_path: Path) -> None:
    from minqing.shared.messaging.access import write_access

    stranger = write_access(tmp_path / "elsewhere", nats_users(secured.settings))
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            secured.settings.nats_url,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            connect_timeout=2,
            **connect_options(stranger["admin/admin"], service_inbox(ADMIN)),
        )


def _walk(s: Settings, streams: tuple[str, ...]) -> list[tuple[str, str, bool]]:
    """Every subject a department system must and must not use: (verb, subject, allowed)."""
    me, other = DEPARTMENT, OTHER
    walk = [
        ("publish", f"{s.ingress_subject_prefix}.{me}.report", True),
        ("publish", f"{s.ingress_subject_prefix}.{me}.resolution", True),
        ("publish", f"{s.ingress_subject_prefix}.{me}.progress", True),
        ("publish", f"{s.ingress_subject_prefix}.{other}.report", False),
        ("publish", f"{s.ingress_subject_prefix}.{other}.resolution", False),
        ("publish", f"{s.subject_prefix}.issue.resolved", False),
        ("publish", f"{s.subject_prefix}.issue.reported", False),
        ("publish", f"{s.outcomes_subject_prefix}.{me}", False),
        ("publish", f"{s.outcomes_subject_prefix}.{other}", False),
        ("publish", f"{s.dlq_subject_prefix}.ingress.{me}", False),
        ("publish", f"_INBOX_MINQING_INTAKE.{me}", False),
        ("publish", "$JS.API.INFO", False),
        ("publish", "$JS.API.STREAM.LIST", False),
        ("publish", "$JS.API.STREAM.NAMES", False),
        ("subscribe", f"{s.outcomes_subject_prefix}.{me}", True),
        ("subscribe", f"_INBOX_{me}.>", True),
        ("subscribe", f"{s.outcomes_subject_prefix}.{other}", False),
        ("subscribe", f"{s.outcomes_subject_prefix}.*", False),
        ("subscribe", f"{s.outcomes_subject_prefix}.>", False),
        ("subscribe", f"{s.ingress_subject_prefix}.{other}.report", False),
        ("subscribe", f"{s.ingress_subject_prefix}.{me}.report", False),
        ("subscribe", f"{s.ingress_subject_prefix}.>", False),
        ("subscribe", f"{s.subject_prefix}.>", False),
        ("subscribe", f"{s.dlq_subject_prefix}.>", False),
        ("subscribe", f"_INBOX_{other}.>", False),
        ("subscribe", "_INBOX.>", False),
        ("subscribe", "_INBOX_MINQING_INTAKE.>", False),
        ("subscribe", "$JS.>", False),
        ("subscribe", ">", False),
    ]
    for stream in streams:
        for api in (
            "STREAM.DELETE",
            "STREAM.PURGE",
            "STREAM.INFO",
            "STREAM.CREATE",
            "STREAM.UPDATE",
            "STREAM.MSG.GET",
            "STREAM.MSG.DELETE",
            "CONSUMER.CREATE",
            "CONSUMER.LIST",
        ):
            walk.append(("publish", f"$JS.API.{api}.{stream}", False))
        walk.append(("publish", f"$JS.API.DIRECT.GET.{stream}", False))
    walk.append(("publish", f"$JS.API.CONSUMER.DELETE.{streams[0]}.assignment", False))
    walk.append(("publish", f"$JS.API.CONSUMER.MSG.NEXT.{streams[1]}.intake-ingress", False))
    return walk


async def test_a_department_walks_every_subject_it_must_and_must_not_use(
    secured: Secured, users: dict[str, User]
) -> None:
    admin, department = users[ADMIN], users[DEPARTMENT]
    before = await _stream_states(secured, admin)
    got = []
    for verb, subject, _ in _walk(secured.settings, secured.streams()):
        act = department.publish if verb == "publish" else department.subscribe
        got.append((verb, subject, await act(subject)))
    assert got == _walk(secured.settings, secured.streams())
    assert department.nc.is_connected  # refused, not cut off
    after = await _stream_states(secured, admin)
    ingress = secured.settings.ingress_stream_name
    # The streams are all there, as they were (the same incarnation), the canonical one
    # without a forged event; only its own three messages reached the ingress stream.
    assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in before.items()}
    assert {k: v[0] for k, v in after.items() if k != ingress} == {
        k: v[0] for k, v in before.items() if k != ingress
    }
    assert after[ingress][0] == before[ingress][0] + 3


async def test_a_department_cannot_delete_or_purge_a_stream_even_asking_properly(
    secured: Secured, users: dict[str, User]
) -> None:
    """As a JetStream client would: a request and a wait for the answer (none comes)."""
    admin, department = users[ADMIN], users[DEPARTMENT]
    before = await _stream_states(secured, admin)
    js = department.nc.jetstream(timeout=1)
    for name in secured.streams():
        with pytest.raises(Exception):  # noqa: B017 - no answer: a timeout
            await js.purge_stream(name)
        with pytest.raises(Exception):  # noqa: B017
            await js.delete_stream(name)
    assert await _stream_states(secured, admin) == before
    assert sum(VIOLATION in e.lower() for e in department.errors) >= 2 * len(before)


async def test_a_service_publishes_only_the_event_types_it_emits(
    secured: Secured, users: dict[str, User]
) -> None:
    admin = users[ADMIN]
    before = await _stream_states(secured, admin)
    expected, got = {}, {}
    for service in SERVICES:
        for cls in EVENT_CLASSES:
            subject = f"{secured.settings.subject_prefix}.{cls.TYPE}"
            expected[service, cls.TYPE] = EMITTED_BY[cls] == service
            got[service, cls.TYPE] = await users[service].publish(subject)
    assert got == expected
    allowed = sum(expected.values())
    assert allowed == len(EVENT_CLASSES)  # each type by exactly one service
    canonical = secured.settings.stream_name
    after = await _stream_states(secured, admin)
    assert after[canonical][0] == before[canonical][0] + allowed


async def test_no_service_changes_deletes_or_purges_a_stream_or_reads_another_services_consumer(
    secured: Secured, users: dict[str, User]
) -> None:
    admin = users[ADMIN]
    before = await _stream_states(secured, admin)
    canonical = secured.settings.stream_name
    for service in SERVICES:
        user = users[service]
        for name in secured.streams():
            assert not await user.publish(f"$JS.API.STREAM.DELETE.{name}")
            assert not await user.publish(f"$JS.API.STREAM.PURGE.{name}")
            assert not await user.publish(f"$JS.API.STREAM.UPDATE.{name}")  # checked, never changed
        for durable in ("assignment", "followup", "intake-status", "projection-issues"):
            if durable.split("-")[0] != service:
                assert not await user.publish(f"$JS.API.CONSUMER.MSG.NEXT.{canonical}.{durable}")
                assert not await user.publish(f"$JS.API.CONSUMER.DELETE.{canonical}.{durable}")
        assert not await user.subscribe(f"{secured.settings.subject_prefix}.>")
        assert not await user.subscribe("_INBOX.>")
    assert await _stream_states(secured, admin) == before


# ------------------------------------------------------------------ the whole loop, allowed


async def _outcome(sub: Any, ingress_id: str) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            message = await sub.next_msg(timeout=30)
            outcome: dict[str, Any] = json.loads(message.data)
            if outcome["ingress_id"] == ingress_id:
                return outcome


def _cloudevent(kind: str, source: str, data: Any, ingress_id: str | None = None) -> bytes:
    event = {
        "specversion": "1.0",
        "id": ingress_id or str(uuid.uuid4()),
        "source": f"/{source}",
        "type": f"minqing.ingress.{kind}",
        "datacontenttype": "application/json",
        "data": data,
    }
    return json.dumps(event).encode()


async def test_each_service_with_its_own_key_and_a_department_run_a_matter_to_closed(
    secured: Secured,
) -> None:
    unit = "civil_affairs"  # a town office that is also a source: it reports and resolves
    s = secured.settings
    async with AsyncExitStack() as stack:
        intake = await stack.enter_async_context(
            serve(intake_app(secured.service_settings("intake")))
        )
        await stack.enter_async_context(
            serve(assignment_app(secured.service_settings("assignment")))
        )
        followup = await stack.enter_async_context(
            serve(followup_app(secured.service_settings("followup")))
        )
        projection = await stack.enter_async_context(
            serve(projection_app(secured.service_settings("projection")))
        )
        department = await nats.connect(
            s.nats_url, **connect_options(secured.seed("department", unit), department_inbox(unit))
        )
        stack.push_async_callback(department.close)
        outcomes = await department.subscribe(f"{s.outcomes_subject_prefix}.{unit}")
        js = department.jetstream()
        subject = f"{s.ingress_subject_prefix}.{unit}"
        headers = {"content-type": "application/cloudevents+json"}

        # A report over NATS: acknowledged by the stream, accepted by intake.
        data = report(category="elderly_care")
        sent = str(uuid.uuid4())
        ack = await js.publish(
            f"{subject}.report", _cloudevent("report", unit, data, sent), headers=headers
        )
        assert ack.stream == s.ingress_stream_name
        accepted = await _outcome(outcomes, sent)
        assert accepted["accepted"] is True, accepted
        issue_id = accepted["issue_id"]

        async def case() -> dict[str, Any] | None:
            response = await followup.get(f"/api/v1/issues/{issue_id}/case")
            return response.json() if response.status_code == 200 else None

        assigned = await eventually(case, lambda c: c is not None and c["status"] == "assigned")
        assert assigned is not None and assigned["unit"] == unit

        # Its resolution over NATS: followup answers it.
        solved = str(uuid.uuid4())
        resolution = {"external_ref": data["external_ref"], "summary": "Meals delivered"}
        await js.publish(
            f"{subject}.resolution",
            _cloudevent("resolution", unit, resolution, solved),
            headers=headers,
        )
        assert (await _outcome(outcomes, solved))["accepted"] is True

        # The look-back over HTTP, by line staff: closed.
        passed = await followup.post(
            f"/api/v1/issues/{issue_id}/lookback",
            json={"outcome": "passed", "visitor": "grid-worker-7", "notes": "All well"},
            headers=AS["line"],
        )
        assert passed.status_code == 201, passed.text

        async def status() -> str | None:
            response = await projection.get(f"/api/v1/issues/{issue_id}")
            return response.json()["status"] if response.status_code == 200 else None

        await eventually(status, lambda got: got == "closed", within=30)

        # A report that cannot be accepted: dead-lettered and answered; re-submitted
        # corrected by the operator, it goes back on the department's subject and is accepted.
        broken = str(uuid.uuid4())
        bad = report(category="elderly_care", title="")
        await js.publish(
            f"{subject}.report", _cloudevent("report", unit, bad, broken), headers=headers
        )
        assert (await _outcome(outcomes, broken))["accepted"] is False
        letters = await eventually(
            lambda: intake.get("/api/v1/dead-letters"),
            lambda r: r.status_code == 200 and len(r.json()) >= 1,
        )
        letter = letters.json()[0]
        fixed = _cloudevent("report", unit, report(category="elderly_care"), broken)
        resubmitted = await intake.post(
            f"/api/v1/dead-letters/{letter['id']}/resubmit", content=fixed
        )
        assert resubmitted.status_code == 202, resubmitted.text
        assert (await _outcome(outcomes, broken))["accepted"] is True

    # Every service did all of that without a single permission violation.
    log = secured.log()
    assert "Permissions Violation" not in log, log[-3000:]


# ------------------------------------------------------------------ the configuration itself


def test_nats_config_writes_what_the_production_config_includes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from minqing.services.cli import app
    from minqing.shared.embedded.nats import nats_server_binary
    from tests.support.paths import ROOT

    out = tmp_path / "nats"
    result = CliRunner().invoke(app, ["nats-config", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "credentials" / "departments" / f"{DEPARTMENT}.nk").is_file()
    shutil.copy(ROOT / "deploy" / "nats.conf", out / "nats.conf")
    checked = subprocess.run(
        [str(nats_server_binary()), "-t", "-c", str(out / "nats.conf")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_the_embedded_server_keeps_its_keys_across_restarts(
    settings: Settings, tmp_path: Path
) -> None:
    store = tmp_path / "nats"
    with EmbeddedNats(store, users=nats_users(settings)) as server:
        seeds = {name: path.read_bytes() for name, path in server.credentials.items()}
    with EmbeddedNats(store, users=nats_users(settings)) as server:
        assert {n: p.read_bytes() for n, p in server.credentials.items()} == seeds
        seed = server.credentials_of("service", "assignment")
        nc = await nats.connect(server.url, **connect_options(seed, service_inbox("assignment")))
        await nc.close()
    assert stat.S_IMODE(seed.stat().st_mode) == 0o600
