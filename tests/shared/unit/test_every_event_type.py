"""Every registered event type is whole: a sentence in both languages, an upcaster chain from
version 1 to its current version, an entry in the AsyncAPI document, and a round trip
through the envelope. A class declared in the contract is checked here without a list to
extend."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from functools import cache
from types import NoneType, UnionType
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import annotated_types
import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from minqing.services.catalog import consumers
from minqing.services.projection.sentences import SENTENCES, Names, describe
from minqing.shared.contract import events
from minqing.shared.contract.asyncapi import EMITTED_BY, asyncapi
from minqing.shared.contract.envelope import TYPE_PREFIX, decode, parse, wrap
from minqing.shared.contract.events import EVENT_CLASSES, EVENTS_BY_TYPE, UPCASTERS, Event
from minqing.shared.contract.reference import load
from minqing.shared.service.settings import REFERENCE_DIR, SERVICES, Settings

NAMES = Names(load(REFERENCE_DIR))
SHANGHAI = timezone(timedelta(hours=8))
M = TypeVar("M", bound=BaseModel)
every_type = pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda cls: cls.TYPE)


def value(annotation: Any, field: FieldInfo | None, name: str) -> Any:
    """A valid value of one field's type, within its bounds; optional fields are filled too."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return args[0]
    if origin in (Union, UnionType):
        return value(next(a for a in args if a is not NoneType), field, name)
    if origin is tuple:
        return (value(args[0], None, name),)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return example(annotation)
    if annotation is bool:
        return True
    if annotation is int:
        bounds = field.metadata if field else []
        low: list[Any] = [b.ge for b in bounds if isinstance(b, annotated_types.Ge)]
        low += [b.gt for b in bounds if isinstance(b, annotated_types.Gt)]
        return int(max(low, default=1)) + 1
    return {float: 12.5, Decimal: Decimal("1234.50"), date: date(2027, 1, 4), str: name}[annotation]


def example(cls: type[M]) -> M:
    """An instance with every field set, derived from the class's own fields."""
    return cls(**{n: value(f.annotation, f, n) for n, f in cls.model_fields.items()})


@cache
def document() -> dict[str, Any]:
    return asyncapi(Settings(), consumers())


def test_the_registry_holds_every_type_declared_in_the_contract_once_by_its_name() -> None:
    declared = [
        cls
        for cls in vars(events).values()
        if isinstance(cls, type) and issubclass(cls, Event) and "TYPE" in cls.__dict__
    ]

    assert list(EVENT_CLASSES) == declared
    assert list(EVENTS_BY_TYPE.values()) == declared
    assert all(EVENTS_BY_TYPE[cls.TYPE] is cls for cls in EVENT_CLASSES)


def test_a_type_that_does_not_say_who_emits_it_is_refused_where_it_is_declared() -> None:
    with pytest.raises(TypeError, match="which service emits it"):

        class Teleported(Event):  # pragma: no cover - refused before it exists
            TYPE = "issue.teleported"

    assert "issue.teleported" not in EVENTS_BY_TYPE


def test_every_upcaster_belongs_to_a_registered_type_below_its_version() -> None:
    for type_, version in UPCASTERS:
        assert 1 <= version < EVENTS_BY_TYPE[type_].VERSION


@every_type
def test_it_is_emitted_by_a_service(cls: type[Event]) -> None:
    assert cls.EMITTED_BY in SERVICES
    assert EMITTED_BY[cls] == cls.EMITTED_BY


@every_type
def test_it_has_a_sentence_in_chinese_and_in_english(cls: type[Event]) -> None:
    event = example(cls)

    said = describe(TYPE_PREFIX + cls.TYPE, cls.VERSION, event.model_dump(mode="json"), NAMES)

    assert cls in SENTENCES
    assert said == SENTENCES[cls](event, NAMES)  # its own sentence, not the fallback
    assert said.zh and said.en and said.zh != said.en


@every_type
def test_its_upcaster_chain_leads_from_version_1_to_its_current_version(cls: type[Event]) -> None:
    assert all((cls.TYPE, v) in UPCASTERS for v in range(1, cls.VERSION))
    assert (cls.TYPE, cls.VERSION) not in UPCASTERS


@every_type
def test_it_has_its_channel_its_publisher_and_its_schema_in_the_asyncapi_document(
    cls: type[Event],
) -> None:
    addresses = {c["address"] for c in document()["channels"].values()}
    sent = {n for n, op in document()["operations"].items() if op["action"] == "send"}
    schemas = document()["components"]["schemas"]

    assert f"minqing.events.{cls.TYPE}" in addresses
    assert f"{cls.EMITTED_BY}: minqing.{cls.TYPE}" in sent
    assert set(schemas[cls.__name__]["properties"]) == set(cls.model_fields)
    assert schemas[f"{cls.__name__}CloudEvent"]["properties"]["data"]


@every_type
def test_it_survives_the_round_trip_through_the_envelope(cls: type[Event]) -> None:
    event = example(cls)
    envelope = wrap(
        event,
        issue_id="issue-1",
        service=cls.EMITTED_BY,
        actor="someone",
        time=datetime(2027, 1, 4, 9, 30, tzinfo=SHANGHAI),
    )

    read = parse(envelope.to_json())

    assert read == envelope
    assert read.dataversion == cls.VERSION
    assert decode(read) == event
