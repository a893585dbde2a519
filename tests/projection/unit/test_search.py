"""Free text for Chinese: normalised text and character pairs."""

from __future__ import annotations

from minqing.services.projection.search import bigrams, normalise, searchable


def test_text_is_normalised_to_letters_and_digits_case_folded_and_half_width() -> None:
    assert normalise("石官路 路灯，ＮＯ.３ Street") == "石官路路灯no3street"


def test_a_chinese_query_pair_is_among_the_pairs_of_the_text() -> None:
    text, grams = searchable(["石官路路灯不亮", None, "Shiguan Road"])

    assert set(bigrams(normalise("路灯"))) <= set(grams)
    assert "路灯" in text
    assert grams.count("路路") == 1  # distinct pairs


def test_a_single_character_has_no_pairs() -> None:
    assert bigrams(normalise("灯")) == []
