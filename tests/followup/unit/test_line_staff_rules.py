"""The registry of line staff, as rules: what the reference file adds or changes, what a
change by hand records, and that a removal outlasts the file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from minqing.services.followup.linestaff import (
    FILES_ACTOR,
    InvalidStaffFile,
    PutStaff,
    RemoveStaff,
    Staff,
    UnknownStaff,
    decide_put,
    decide_remove,
    decide_sync,
    evolve,
    load,
)
from minqing.shared.contract.reference import load as load_reference
from minqing.shared.service.settings import REFERENCE_DIR

NAMES = {"grid_center": "网格中心 Grid Center", "civil_affairs": "民政办 Civil Affairs Office"}
ZHOU = Staff(
    "person:zhou.min", "周敏 Zhou Min", "grid_center", (), seeded="周敏 Zhou Min|grid_center|"
)


def put(unit: str = "grid_center", *villages: str) -> PutStaff:
    return PutStaff("person:zhou.min", "周敏 Zhou Min", unit, villages, "moved", "person:op")


def test_the_shipped_file_names_known_units_and_villages() -> None:
    reference = load_reference(REFERENCE_DIR)

    files = load(REFERENCE_DIR, reference.all_units(), list(reference.villages))

    assert files["person:zhou.min"] == ZHOU
    assert files["person:gu.hong"].villages == ("sanqi", "qizhuang", "xuma")


def test_a_file_naming_an_unknown_unit_or_village_is_refused_naming_them(tmp_path: Path) -> None:
    (tmp_path / "linestaff.toml").write_text(
        '["person:a"]\nname = "A"\nunit = "the_mayor"\nvillages = ["atlantis"]\n'
        '["wang"]\nname = "W"\nunit = "grid_center"\n',
        encoding="utf-8",
    )

    with pytest.raises(InvalidStaffFile) as refused:
        load(tmp_path, ["grid_center"], ["sanqi"])

    message = str(refused.value)
    assert "unknown unit 'the_mayor'" in message
    assert "unknown village 'atlantis'" in message
    assert "wang: not a person's principal id" in message


def test_people_new_to_the_file_are_registered_without_an_event() -> None:
    new, events = decide_sync({ZHOU.person_id: ZHOU}, {}, NAMES)

    assert (new, events) == ([ZHOU], [])


def test_a_change_in_the_file_is_an_event_once() -> None:
    moved = replace(ZHOU, unit="civil_affairs", seeded="周敏 Zhou Min|civil_affairs|")

    _, events = decide_sync({ZHOU.person_id: moved}, {ZHOU.person_id: ZHOU}, NAMES)

    (event,) = events
    assert (event.change, event.unit, event.previous_unit, event.changed_by) == (
        "changed",
        "civil_affairs",
        "grid_center",
        FILES_ACTOR,
    )
    after = evolve(ZHOU, event, {ZHOU.person_id: moved})
    assert decide_sync({ZHOU.person_id: moved}, {ZHOU.person_id: after}, NAMES) == ([], [])


def test_a_change_by_hand_stays_until_the_file_changes_that_person() -> None:
    event = decide_put(ZHOU, put("grid_center", "sanqi"), NAMES)
    assert event is not None and event.change == "changed"
    by_hand = evolve(ZHOU, event, {ZHOU.person_id: ZHOU})

    assert by_hand.villages == ("sanqi",)
    assert decide_sync({ZHOU.person_id: ZHOU}, {ZHOU.person_id: by_hand}, NAMES) == ([], [])
    assert decide_put(by_hand, put("grid_center", "sanqi"), NAMES) is None  # nothing new


def test_a_removed_person_stays_removed_until_the_file_changes_them() -> None:
    removed_event = decide_remove(ZHOU, RemoveStaff(ZHOU.person_id, "retired", "person:op"), NAMES)
    removed = evolve(ZHOU, removed_event, {ZHOU.person_id: ZHOU})

    assert not removed.active
    assert decide_sync({ZHOU.person_id: ZHOU}, {ZHOU.person_id: removed}, NAMES) == ([], [])
    with pytest.raises(UnknownStaff):
        decide_remove(removed, RemoveStaff(ZHOU.person_id, "twice", "person:op"), NAMES)
    again = decide_put(removed, put(), NAMES)
    assert again is not None and again.change == "added"
