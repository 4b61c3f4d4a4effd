"""重复诉求's pure core (incidents.repeats) and the pack's [repeats] rule (data_sources.packs). No DB."""
from __future__ import annotations

import re

import pytest

from data_sources.packs import PackError, load_pack
from incidents.repeats import Reach, RepeatRules, score, text_similarity, tokens


def test_chinese_text_is_cut_into_words_and_similar_complaints_score_high():
    assert tokens("小区门口垃圾没人清理！") == "小区 门口 垃圾 没 人 清理"
    same = text_similarity("小区门口垃圾没人清理", "门口的垃圾一直没有人清理")
    other = text_similarity("小区门口垃圾没人清理", "路灯不亮了")
    assert same > 0.7 > 0.3 > other
    assert text_similarity("", "垃圾") == 0.0


def test_the_score_is_the_weighted_sum_of_its_parts_and_falls_with_distance_and_time():
    rules, reach = RepeatRules(), Reach(100, 100)
    near = score(rules, reach, distance_m=10, hours=10, text_a="井盖松动", text_b="井盖松动", same_category=True)
    assert near.parts == {"distance": 0.9, "time": 0.9, "text": 1.0, "category": 1.0}
    assert near.total == pytest.approx(0.35 * 0.9 + 0.15 * 0.9 + 0.4 + 0.1)
    far = score(rules, reach, distance_m=90, hours=90, text_a="井盖松动", text_b="井盖松动", same_category=False)
    assert far.parts["distance"] == pytest.approx(0.1) and far.parts["category"] == rules.related_factor
    assert far.total < near.total
    assert "距离" in near.explain(rules.weights) and "distance" in near.explain(rules.weights, "en")


def test_the_hangzhou_pack_sets_reach_per_major_class_and_groups_related_categories():
    r = load_pack("hangzhou").repeats
    assert r.reach("E0101", "E01") == Reach(150, 72)
    assert r.reach("C0101", "C01") == Reach(50, 720)
    assert r.reach("C0201", "C02") == Reach(r.radius_m, r.window_h)
    assert r.related_to("E0102") == ("E0102", "E0101", "E0103")
    assert r.related_to("E0401") == ("E0401",)
    assert (r.alarm_count, r.alarm_days) == (3, 30) and 0 < r.min_score < r.auto_link_score <= 1


@pytest.fixture(scope="module")
def categories():
    return load_pack("hangzhou").categories


@pytest.mark.parametrize(("section", "message"), [
    ({"radius_m": -5}, "radius_m must be a number > 0"),
    ({"related": [["E0101", "NOPE"]]}, "neither a category nor a major code"),
    ({"major": {"X9": {"radius_m": 10}}}, "X9 is not a major code"),
    ({"alarm_count": 0}, "alarm_count must be an integer"),
    ({"auto_link": 0.9}, "unknown setting(s) auto_link"),
    ({"weights": {"smell": 1}}, "[repeats.weights]"),
])
def test_a_bad_repeats_section_is_refused_with_what_is_wrong(categories, section, message):
    from data_sources.packs import _repeats
    with pytest.raises(PackError, match=re.escape(message)):
        _repeats({"repeats": section}, categories)
