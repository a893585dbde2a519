"""Reference data: the TOML files load, route new matters, and fail loudly when inconsistent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from minqing.shared.contract.reference import InvalidReferenceData, UnknownCode, load, require
from minqing.shared.service.settings import REFERENCE_DIR

CATEGORIES = """
[groups.livelihood]
name = "Livelihood"

[categories.roads]
name = "道路 Roads"
unit = "town_construction"
working_days = 15
group = "livelihood"
service_code = "102"
aliases = ["broken road"]

[categories.other]
name = "Other"
unit = "village_branch"
working_days = 10
group = "livelihood"
service_code = "999"
"""

VILLAGES = """
[villages.sanqi]
name = "三岐村 Sanqi Village"
kind = "village"
secretary_id = "sanqi-secretary"
secretary_name = "Wang Jianguo"
secretary_contact = "0527-1"
aliases = ["Sanqi", "三岐"]

[villages.xuma]
name = "Xuma Village"
kind = "village"
secretary_id = "xuma-secretary"
secretary_name = "Xu Haijun"
secretary_contact = "0527-2"
"""

SOURCES = """
[sources.visit]
name = "Door-to-door visit"

[sources.hotline_12345]
name = "12345 hotline"
"""

UNITS = """
[units.town_construction]
name = "Town Construction Office"
responsible_id = "construction-head"
responsible_name = "Liu Zhiqiang"
contact = "0527-3"
"""


def write_set(directory: Path, **overrides: str) -> Path:
    """A small valid set of the four files; ``overrides`` replace a file's text by kind."""
    texts = {"categories": CATEGORIES, "villages": VILLAGES, "sources": SOURCES, "units": UNITS}
    texts.update(overrides)
    for kind, text in texts.items():
        (directory / f"{kind}.toml").write_text(text, encoding="utf-8")
    return directory


def test_the_shipped_reference_data_loads() -> None:
    reference = load(REFERENCE_DIR)

    assert "street_lights" in reference.categories
    assert "sanqi" in reference.villages
    assert "hotline_12345" in reference.sources


def test_every_shipped_category_routes_every_village_to_a_known_unit() -> None:
    reference = load(REFERENCE_DIR)
    units = reference.all_units()

    for category in reference.categories:
        for village in reference.villages:
            assert reference.route(category, village).unit in units


def test_a_category_of_an_office_routes_to_that_office_with_the_village_secretary(
    tmp_path: Path,
) -> None:
    reference = load(write_set(tmp_path))

    route = reference.route("roads", "sanqi")

    assert route.unit == "town_construction"
    assert route.person_id == "sanqi-secretary"
    assert route.person_name == "Wang Jianguo"
    assert route.working_days == 15


def test_a_village_branch_category_routes_to_the_reporting_villages_own_branch(
    tmp_path: Path,
) -> None:
    reference = load(write_set(tmp_path))

    route = reference.route("other", "xuma")

    assert route.unit == "xuma_branch"
    assert route.person_id == "xuma-secretary"
    assert route.working_days == 10


def test_routing_an_unknown_category_names_the_valid_ones(tmp_path: Path) -> None:
    reference = load(write_set(tmp_path))

    with pytest.raises(UnknownCode, match="unknown category 'bridges'; valid codes: roads, other"):
        reference.route("bridges", "sanqi")


def test_routing_an_unknown_village_names_the_valid_ones(tmp_path: Path) -> None:
    reference = load(write_set(tmp_path))

    with pytest.raises(UnknownCode, match="unknown village 'dongfang'; valid codes: sanqi, xuma"):
        reference.route("roads", "dongfang")


def test_the_units_are_the_offices_and_every_villages_branch(tmp_path: Path) -> None:
    reference = load(write_set(tmp_path))

    assert reference.codes("units") == ["town_construction", "sanqi_branch", "xuma_branch"]
    assert require(reference, "units", "xuma_branch") == "xuma_branch"


def test_an_unknown_source_names_the_valid_sources(tmp_path: Path) -> None:
    reference = load(write_set(tmp_path))

    with pytest.raises(
        UnknownCode, match="unknown source 'fax'; valid codes: visit, hotline_12345"
    ):
        require(reference, "sources", "fax")


def test_an_unknown_code_is_a_value_error_for_request_validation(tmp_path: Path) -> None:
    reference = load(write_set(tmp_path))

    with pytest.raises(ValueError, match="unknown unit 'sanqi'"):
        require(reference, "units", "sanqi")


def test_loading_the_same_directory_again_returns_the_cached_data(tmp_path: Path) -> None:
    first = load(write_set(tmp_path))
    write_set(tmp_path, units=UNITS + '\n[units.water_station]\nname = "Water"\n')

    again = load(tmp_path)

    assert again is first
    assert "water_station" not in again.units


def test_a_category_routed_to_an_unknown_unit_fails_to_load(tmp_path: Path) -> None:
    categories = CATEGORIES.replace('unit = "town_construction"', 'unit = "nowhere"')

    with pytest.raises(ValueError, match="category 'roads' routes to unknown unit 'nowhere'"):
        load(write_set(tmp_path, categories=categories))


def test_an_office_named_like_a_village_branch_fails_to_load(tmp_path: Path) -> None:
    units = UNITS + (
        '\n[units.sanqi_branch]\nname = "Impostor"\nresponsible_id = "x"\n'
        'responsible_name = "X"\ncontact = "1"\n'
    )

    with pytest.raises(ValueError, match="unit 'sanqi_branch' clashes with a village branch"):
        load(write_set(tmp_path, units=units))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"categories": CATEGORIES.replace("categories.roads", 'categories."Roads"')}, "Roads"),
        ({"villages": VILLAGES.replace("villages.sanqi", 'villages."sanqi.east"')}, "sanqi.east"),
        ({"sources": SOURCES.replace("sources.visit", 'sources."home-visit"')}, "home-visit"),
        (
            {
                "units": UNITS.replace("town_construction", "_office"),
                "categories": CATEGORIES.replace("town_construction", "_office"),
            },
            "_office",
        ),
    ],
    ids=["categories", "villages", "sources", "units"],
)
def test_a_code_that_is_not_nats_subject_safe_fails_to_load(
    tmp_path: Path, overrides: dict[str, str], expected: str
) -> None:
    kind = next(iter(overrides))

    with pytest.raises(ValueError, match=re.escape(f"{kind} code {expected!r} must match")):
        load(write_set(tmp_path, **overrides))


@pytest.mark.parametrize("days", [0, 366])
def test_a_time_limit_outside_one_day_to_a_year_fails_to_load(tmp_path: Path, days: int) -> None:
    categories = CATEGORIES.replace("working_days = 15", f"working_days = {days}")

    with pytest.raises(ValueError, match=r"categories\.roads\.working_days"):
        load(write_set(tmp_path, categories=categories))


def test_a_misspelled_field_fails_to_load(tmp_path: Path) -> None:
    villages = VILLAGES.replace("secretary_name", "secretary_nmae", 1)

    with pytest.raises(ValueError, match=r"villages\.sanqi\.secretary_nmae\s+Extra inputs"):
        load(write_set(tmp_path, villages=villages))


def test_a_village_of_an_unknown_kind_fails_to_load(tmp_path: Path) -> None:
    villages = VILLAGES.replace('kind = "village"', 'kind = "hamlet"', 1)

    with pytest.raises(ValueError, match=r"villages\.sanqi\.kind"):
        load(write_set(tmp_path, villages=villages))


def test_a_missing_file_fails_to_load_naming_it(tmp_path: Path) -> None:
    write_set(tmp_path)
    (tmp_path / "sources.toml").unlink()

    with pytest.raises(InvalidReferenceData, match=r"sources\.toml"):
        load(tmp_path)


def test_a_misspelled_table_name_fails_to_load(tmp_path: Path) -> None:
    villages = VILLAGES.replace("[villages.", "[village.")

    with pytest.raises(ValueError, match="village"):
        load(write_set(tmp_path, villages=villages))


@pytest.mark.parametrize(
    "name", ["sanqi", "Sanqi", "SANQI", "Sanqi Village", "  sanqi   village ", "三岐村", "三岐"]
)
def test_a_village_is_found_by_code_name_either_part_of_it_or_alias(
    tmp_path: Path, name: str
) -> None:
    reference = load(write_set(tmp_path))

    assert reference.resolve("villages", name) == "sanqi"


@pytest.mark.parametrize("name", ["roads", "道路", "Roads", "broken road", "道路 Roads"])
def test_a_category_is_found_by_code_name_or_alias(tmp_path: Path, name: str) -> None:
    reference = load(write_set(tmp_path))

    assert reference.resolve("categories", name) == "roads"
    assert reference.by_service_code("102") == "roads"


def test_an_unknown_name_still_names_the_valid_codes(tmp_path: Path) -> None:
    reference = load(write_set(tmp_path))

    with pytest.raises(UnknownCode, match="unknown village 'Sanqiao'; valid codes: sanqi, xuma"):
        reference.resolve("villages", "Sanqiao")


def test_an_alias_naming_two_villages_fails_to_load(tmp_path: Path) -> None:
    villages = VILLAGES.replace(
        'secretary_name = "Xu Haijun"', 'secretary_name = "Xu"\naliases = ["Sanqi"]'
    )

    with pytest.raises(InvalidReferenceData, match="'sanqi' names both 'sanqi' and 'xuma'"):
        load(write_set(tmp_path, villages=villages))


def test_two_categories_with_one_open311_service_code_fail_to_load(tmp_path: Path) -> None:
    categories = CATEGORIES.replace('service_code = "999"', 'service_code = "102"')

    with pytest.raises(InvalidReferenceData, match="share service_code '102'"):
        load(write_set(tmp_path, categories=categories))


def test_a_category_in_an_unknown_group_fails_to_load(tmp_path: Path) -> None:
    categories = CATEGORIES.replace(
        'group = "livelihood"\nservice_code = "999"', 'group = "x"\nservice_code = "999"'
    )

    with pytest.raises(InvalidReferenceData, match="category 'other' is in unknown group 'x'"):
        load(write_set(tmp_path, categories=categories))


def test_a_file_that_is_not_toml_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidReferenceData, match=r"villages\.toml"):
        load(write_set(tmp_path, villages="[villages.sanqi\nname="))


def test_an_office_without_a_responsible_person_fails_to_load(tmp_path: Path) -> None:
    units = UNITS.replace('responsible_name = "Liu Zhiqiang"\n', "")

    with pytest.raises(InvalidReferenceData, match="responsible_name"):
        load(write_set(tmp_path, units=units))


def test_the_registry_holds_every_office_and_every_village_branch_with_its_secretary() -> None:
    reference = load(REFERENCE_DIR)
    registry = reference.registry()

    assert set(registry) == set(reference.all_units())
    for office in (
        "hotline_12345",
        "civil_affairs",
        "rural_revitalization",
        "letters_visits",
        "mediation_center",
        "grid_center",
        "health_center_branch",
        "town_organ_branch",
    ):
        assert registry[office].kind == "office"
        assert registry[office].person_id and registry[office].contact
    branch = registry["sanqi_branch"]
    assert (branch.kind, branch.village) == ("branch", "sanqi")
    assert (branch.person_id, branch.person_name) == ("sanqi-secretary", "王建国 Wang Jianguo")
