"""Routing rules as data: matching (most specific, then file order), defaults, validation."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from minqing.services.assignment.routing import Matter, Person, Routing, Rule, check, load
from minqing.shared.contract.reference import InvalidReferenceData, UnknownCode
from minqing.shared.contract.reference import load as load_reference
from minqing.shared.service.settings import REFERENCE_DIR

REFERENCE = load_reference(REFERENCE_DIR)
PLANS = {"bridge_rebuild", "road_repair"}


def rule(id: str, **fields: Any) -> Rule:
    return Rule.model_validate({"id": id, "explain": f"because {id}", **fields})


def routing(*rules: Rule) -> Routing:
    check(rules, REFERENCE, PLANS)
    return Routing(reference=REFERENCE, rules=rules)


def matter(
    category: str = "roads",
    scale: str = "major",
    village: str = "sanqi",
    source: str | None = "visit",
) -> Matter:
    return Matter(category=category, scale=scale, village=village, source=source)


def test_without_a_matching_rule_the_category_defaults_apply() -> None:
    route = routing().route(matter("street_lights", "small", "xuma"))

    assert route.rule_id == "category:street_lights"
    assert (route.unit, route.working_days) == ("town_construction", 5)
    assert route.responsible == "village_secretary"
    assert "no routing rule matched" in route.explanation


def test_the_village_branch_unit_is_the_matters_own_village_branch() -> None:
    route = routing().route(matter("other", "small", "xuma"))

    assert route.unit == "xuma_branch"


def test_a_matching_rule_decides_unit_person_time_limit_and_plan() -> None:
    bridge = rule(
        "bridge",
        category="bridges",
        scale="major",
        unit="town_construction",
        responsible="unit_responsible",
        working_days=20,
        plan="bridge_rebuild",
    )

    route = routing(bridge).route(matter("bridges"))

    assert (route.rule_id, route.explanation) == ("bridge", "because bridge")
    assert (route.unit, route.responsible) == ("town_construction", "unit_responsible")
    assert (route.working_days, route.plan_template) == (20, "bridge_rebuild")


def test_a_rule_without_unit_or_time_limit_takes_the_categorys() -> None:
    route = routing(rule("any_road", category="roads")).route(matter())

    assert (route.unit, route.working_days) == ("town_construction", 15)


def test_the_most_specific_matching_rule_wins_whatever_its_place() -> None:
    rules = (
        rule("roads", category="roads", working_days=9),
        rule("roads_in_sanqi_major", category="roads", village="sanqi", scale="major"),
        rule("roads_in_sanqi", category="roads", village="sanqi", working_days=3),
    )

    assert routing(*rules).route(matter()).rule_id == "roads_in_sanqi_major"
    assert routing(*rules).route(matter(scale="small")).rule_id == "roads_in_sanqi"
    assert routing(*rules).route(matter(village="xuma")).rule_id == "roads"


def test_between_equally_specific_rules_the_first_in_the_file_wins() -> None:
    by_village = rule("by_village", village="sanqi", working_days=3)
    by_source = rule("by_source", source="visit", working_days=4)

    assert routing(by_village, by_source).route(matter()).rule_id == "by_village"
    assert routing(by_source, by_village).route(matter()).rule_id == "by_source"


def test_a_condition_may_list_several_codes() -> None:
    disputes = rule("disputes", category=["neighbour_dispute", "land_dispute"], source="visit")
    r = routing(disputes)

    assert r.route(matter("land_dispute", "small")).rule_id == "disputes"
    assert r.route(matter("land_dispute", "small", source="online")).rule_id.startswith("cat")


def test_a_rule_may_name_its_responsible_person() -> None:
    named = rule("named", category="health", responsible={"id": "dr-li", "name": "Dr Li"})

    route = routing(named).route(matter("health", "small"))

    assert route.responsible == Person(id="dr-li", name="Dr Li")


def test_routing_an_unknown_category_or_village_names_the_valid_codes() -> None:
    with pytest.raises(UnknownCode, match="potholes"):
        routing().route(matter("potholes"))
    with pytest.raises(UnknownCode, match="atlantis"):
        routing().route(matter(village="atlantis"))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (rule("r", category="potholes"), "rule 'r': unknown category 'potholes'"),
        (rule("r", village="atlantis"), "rule 'r': unknown village 'atlantis'"),
        (rule("r", source="fax"), "rule 'r': unknown source 'fax'"),
        (rule("r", unit="nowhere"), "rule 'r': unknown unit 'nowhere'"),
        (rule("r", plan="castle"), "rule 'r': unknown plan template 'castle'"),
    ],
)
def test_a_rule_naming_an_unknown_code_is_refused(bad: Rule, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check((bad,), REFERENCE, PLANS)


def test_a_repeated_rule_id_is_refused() -> None:
    with pytest.raises(ValueError, match="rule 'r' appears twice"):
        check((rule("r", category="roads"), rule("r", category="water")), REFERENCE, PLANS)


def test_a_rule_that_can_never_win_is_refused() -> None:
    wide = rule("wide", category=["roads", "bridges"], village="sanqi")
    narrow = rule("narrow", category="roads", village="sanqi")

    with pytest.raises(ValueError, match="rule 'narrow' can never win: the earlier rule 'wide'"):
        check((wide, narrow), REFERENCE, PLANS)
    check((narrow, wide), REFERENCE, PLANS)  # the narrow one first: both can win


def test_a_wider_rule_after_a_more_specific_one_is_reachable() -> None:
    check(
        (rule("a", category="roads", scale="major"), rule("b", category="roads")), REFERENCE, PLANS
    )


def test_an_unknown_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="scale"):
        rule("r", scale="huge")


def test_the_shipped_rules_load_and_route_the_articles_bridge_as_a_staged_project() -> None:
    shipped = load(REFERENCE_DIR, REFERENCE)

    route = shipped.route(matter("bridges", shipped.scale_of("bridges", None)))

    assert (route.rule_id, route.unit, route.plan_template) == (
        "bridge_project",
        "town_construction",
        "bridge_rebuild",
    )


def test_a_bad_rules_file_stops_start_up_with_the_file_and_rule_named(tmp_path: Path) -> None:
    shutil.copytree(REFERENCE_DIR, tmp_path, dirs_exist_ok=True)
    text = (tmp_path / "routing.toml").read_text(encoding="utf-8")
    (tmp_path / "routing.toml").write_text(
        text.replace('plan = "road_repair"', 'plan = "road_rebuild"'), encoding="utf-8"
    )

    with pytest.raises(InvalidReferenceData, match=r"routing\.toml.*'road_project'.*road_rebuild"):
        load(tmp_path, REFERENCE)


def test_a_misspelled_field_in_the_rules_file_is_refused(tmp_path: Path) -> None:
    shutil.copytree(REFERENCE_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "routing.toml").write_text(
        '[[rules]]\nid = "r"\nexplain = "x"\ncategroy = "roads"\n', encoding="utf-8"
    )

    with pytest.raises(InvalidReferenceData, match="categroy"):
        load(tmp_path, REFERENCE)
