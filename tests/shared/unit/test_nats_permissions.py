"""Who may say what on NATS, as computed (``shared/messaging/access.py`` from the services'
declarations, ``services/natsconfig.py``): the permissions themselves, without a server."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from minqing.services.catalog import consumers
from minqing.services.natsconfig import department_sources, nats_users, service_needs
from minqing.shared.contract.asyncapi import EMITTED_BY
from minqing.shared.contract.events import EVENT_CLASSES
from minqing.shared.messaging.access import (
    ACCESS_FILE,
    User,
    connect_options,
    matches,
    public_key,
    write_access,
)
from minqing.shared.service.settings import SERVICES, Settings

SETTINGS = Settings()
EVENTS = SETTINGS.subject_prefix
STREAMS = (
    SETTINGS.stream_name,
    SETTINGS.ingress_stream_name,
    SETTINGS.outcomes_stream_name,
    SETTINGS.dlq_stream_name,
)


def _users() -> dict[str, User]:
    return {f"{u.role}/{u.name}": u for u in nats_users(SETTINGS)}


USERS = _users()
DEPARTMENTS = [u for u in USERS.values() if u.role == "department"]


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.>", "a.b.c", True),
        ("a.>", "a", False),
        ("a.*", "a.>", False),
        ("a.>", "a.*", True),
        ("a.b", "a.*", False),
    ],
)
def test_subject_matching_follows_nats(pattern: str, subject: str, expected: bool) -> None:
    assert matches(pattern, subject) is expected


def test_every_user_is_there_once() -> None:
    names = {f"service/{s}" for s in SERVICES} | {"admin/admin"}
    names |= {f"department/{s}" for s in department_sources(SETTINGS)}
    assert set(USERS) == names
    assert len(nats_users(SETTINGS)) == len(names)
    inboxes = [u.inbox for u in USERS.values()]
    assert len(set(inboxes)) == len(inboxes)


def test_each_event_type_is_published_only_by_the_service_that_emits_it() -> None:
    for cls in EVENT_CLASSES:
        subject = f"{EVENTS}.{cls.TYPE}"
        publishers = {u.name for u in USERS.values() if u.permissions.may_publish(subject)}
        assert publishers == {EMITTED_BY[cls], "admin"}, cls.TYPE


def test_an_event_type_nobody_declared_is_published_by_nobody() -> None:
    subject = f"{EVENTS}.issue.invented"
    assert [u.name for u in USERS.values() if u.permissions.may_publish(subject)] == ["admin"]


@pytest.mark.parametrize("user", DEPARTMENTS, ids=lambda u: u.name)
def test_a_department_sends_and_reads_only_its_own(user: User) -> None:
    p, source = user.permissions, user.name
    others = [d.name for d in DEPARTMENTS if d.name != source]
    assert p.may_publish(f"{SETTINGS.ingress_subject_prefix}.{source}.report")
    assert p.may_publish(f"{SETTINGS.ingress_subject_prefix}.{source}.resolution")
    assert p.may_subscribe(f"{SETTINGS.outcomes_subject_prefix}.{source}")
    assert p.may_subscribe(f"_INBOX_{source}.>")
    for other in others:
        assert not p.may_publish(f"{SETTINGS.ingress_subject_prefix}.{other}.report")
        assert not p.may_subscribe(f"{SETTINGS.outcomes_subject_prefix}.{other}")
        assert not p.may_subscribe(f"{SETTINGS.ingress_subject_prefix}.{other}.report")
        assert not p.may_subscribe(f"_INBOX_{other}.>")
    for subject in (
        f"{EVENTS}.issue.resolved",
        f"{SETTINGS.outcomes_subject_prefix}.{source}",
        f"{SETTINGS.dlq_subject_prefix}.ingress.{source}",
    ):
        assert not p.may_publish(subject)
    for subject in (f"{EVENTS}.>", f"{SETTINGS.ingress_subject_prefix}.>", "_INBOX.>", ">"):
        assert not p.may_subscribe(subject)
    # No JetStream API at all: not even reading a stream's info.
    assert not any(s.startswith("$JS") for s in p.publish)
    for stream in STREAMS:
        for api in ("STREAM.INFO", "STREAM.DELETE", "STREAM.PURGE", "CONSUMER.CREATE"):
            assert not p.may_publish(f"$JS.API.{api}.{stream}")


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_may_delete_or_purge_a_stream(service: str) -> None:
    p = USERS[f"service/{service}"].permissions
    for stream in STREAMS:
        for api in ("STREAM.DELETE", "STREAM.PURGE", "STREAM.MSG.DELETE"):
            assert not p.may_publish(f"$JS.API.{api}.{stream}")
    assert p.subscribe == (f"_INBOX_MINQING_{service.upper()}.>",)


def test_a_service_reads_only_its_own_consumers() -> None:
    durables = {name: name.split("-")[0] for name in consumers(SETTINGS)}
    durables |= {"intake-ingress": "intake", "followup-ingress": "followup"}
    for service in SERVICES:
        p = USERS[f"service/{service}"].permissions
        for durable, owner in durables.items():
            stream = SETTINGS.ingress_stream_name if durable.endswith("ingress") else STREAMS[0]
            for api in (f"$JS.API.CONSUMER.MSG.NEXT.{stream}", f"$JS.API.CONSUMER.CREATE.{stream}"):
                assert p.may_publish(f"{api}.{durable}") is (owner == service), (service, api)
            assert p.may_publish(f"$JS.ACK.{stream}.{durable}.1.2.3.4.5") is (owner == service)
            assert not p.may_publish(f"$JS.API.CONSUMER.DELETE.{stream}.{durable}") or (
                owner == service
            )


def test_the_projection_reads_in_order_with_consumers_of_its_own() -> None:
    p = USERS["service/projection"].permissions
    reader = "projection-history-reader-01KABCDEF"
    assert p.may_publish(f"$JS.API.CONSUMER.CREATE.{STREAMS[0]}.{reader}")
    assert p.may_publish(f"$JS.API.CONSUMER.DELETE.{STREAMS[0]}.{reader}")
    assert not p.may_publish(f"$JS.API.CONSUMER.CREATE.{SETTINGS.ingress_stream_name}.{reader}")


def test_only_services_with_an_ingress_consumer_answer_departments() -> None:
    needs = {n.service: n for n in service_needs(SETTINGS)}
    outcome = f"{SETTINGS.outcomes_subject_prefix}.grid_center"
    dead = f"{SETTINGS.dlq_subject_prefix}.ingress.grid_center"
    for service in SERVICES:
        p = USERS[f"service/{service}"].permissions
        answers = any(d.stream == SETTINGS.ingress_stream_name for d in needs[service].durables)
        assert answers is (service in ("intake", "followup"))
        assert p.may_publish(outcome) is answers
        assert p.may_publish(dead) is answers
    # Re-submitting a dead letter: on the subjects each one reads.
    intake, followup = USERS["service/intake"].permissions, USERS["service/followup"].permissions
    prefix = SETTINGS.ingress_subject_prefix
    assert intake.may_publish(f"{prefix}.grid_center.anything")
    assert followup.may_publish(f"{prefix}.grid_center.resolution")
    assert not followup.may_publish(f"{prefix}.grid_center.report")


def test_the_prefixes_and_stream_names_come_from_the_settings() -> None:
    other = Settings(
        subject_prefix="town.ev",
        stream_name="TOWN_EV",
        ingress_subject_prefix="town.in",
        ingress_stream_name="TOWN_IN",
    )
    by_name = {f"{u.role}/{u.name}": u for u in nats_users(other)}
    assert by_name["service/assignment"].permissions.may_publish("town.ev.issue.assigned")
    assert by_name["service/assignment"].permissions.may_publish("$JS.API.STREAM.INFO.TOWN_EV")
    assert by_name["department/grid_center"].permissions.may_publish("town.in.grid_center.report")
    assert not by_name["department/grid_center"].permissions.may_publish(
        "minqing.ingress.grid_center.report"
    )


def test_keys_are_written_private_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "access"
    first = write_access(out, nats_users(SETTINGS))
    seeds = {name: path.read_bytes() for name, path in first.items()}
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for path in first.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_bytes().startswith(b"SU")
    conf = (out / ACCESS_FILE).read_text()
    for seed in seeds.values():
        assert public_key(seed) in conf
        assert seed.strip().decode() not in conf  # public keys only
    assert "no_auth_user" not in conf
    second = write_access(out, nats_users(SETTINGS))
    assert {name: path.read_bytes() for name, path in second.items()} == seeds
    assert (out / ACCESS_FILE).read_text() == conf


def test_a_user_dropped_and_configured_again_keeps_its_key(tmp_path: Path) -> None:
    out = tmp_path / "access"
    before = {n: p.read_bytes() for n, p in write_access(out, nats_users(SETTINGS)).items()}
    fewer = nats_users(SETTINGS)[:-1]  # one department fewer, then back
    write_access(out, fewer)
    after = {n: p.read_bytes() for n, p in write_access(out, nats_users(SETTINGS)).items()}
    assert after == before


def test_clients_connect_with_their_seed_or_creds_file(tmp_path: Path) -> None:
    assert connect_options(None, "_INBOX_x") == {}
    seed = tmp_path / "x.nk"
    seed.write_text("SUAEXAMPLE\n")
    assert connect_options(seed, "_INBOX_x") == {
        "nkeys_seed": str(seed),
        "inbox_prefix": "_INBOX_x",
    }
    creds = tmp_path / "x.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----\neyJ...\n------END NATS USER JWT------\n")
    assert connect_options(creds, "_INBOX_x")["user_credentials"] == str(creds)
