"""重复诉求 (repeat complaints): the pack's rule and the score of a candidate parent. Pure: no database.

A new case is a *repeat* of an earlier one (its parent) when both are about the same problem: the
same or a related category, close in place and time, saying much the same. Candidates come from
the database (incidents.services.repeat_candidates: an index range scan on category × time × lon/lat
box); this module says how far and how long a category looks (:meth:`RepeatRules.reach`) and how a
pair scores (:func:`score`): a weighted sum of four parts, each in [0, 1], shown with the score so
the suggestion explains itself.

Chinese text is cut into words with jieba (its dictionary ships inside the package: nothing is
downloaded) and compared with rapidfuzz's token-set ratio, so word order and extra words matter
little ("小区门口垃圾没人清理" ~ "门口的垃圾一直没有清理").
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping, Optional

#: the parts of a score and their default weights (the pack's [repeats.weights] may change them)
DEFAULT_WEIGHTS = {"distance": 0.35, "time": 0.15, "text": 0.4, "category": 0.1}
PART_LABELS_ZH = {"distance": "距离", "time": "时间", "text": "文本", "category": "类别"}
PART_LABELS_EN = {"distance": "distance", "time": "time", "text": "text", "category": "category"}


@dataclass(frozen=True)
class Reach:
    """How far (metres) and how far back (hours) a category looks for a parent."""

    radius_m: float
    window_h: float


@dataclass(frozen=True)
class RepeatRules:
    """The pack's ``[repeats]`` (data_sources.packs validates it): defaults, overrides per major
    class and per category, groups of related categories, the score weights, the score above which
    a new case links itself, the least score shown, and the alarm rule (``alarm_count`` repeats at one
    grid × category within ``alarm_days``)."""

    radius_m: float = 100.0
    window_h: float = 168.0
    by_major: Mapping[str, Reach] = field(default_factory=dict)
    by_category: Mapping[str, Reach] = field(default_factory=dict)
    related: tuple[frozenset[str], ...] = ()
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    related_factor: float = 0.5          # the category part of a related (not the same) category
    auto_link_score: float = 0.9
    min_score: float = 0.3
    alarm_count: int = 3
    alarm_days: int = 30

    def reach(self, category: Optional[str], major: Optional[str]) -> Reach:
        if category and category in self.by_category:
            return self.by_category[category]
        if major and major in self.by_major:
            return self.by_major[major]
        return Reach(self.radius_m, self.window_h)

    def related_to(self, category: str) -> tuple[str, ...]:
        """The category itself first, then the others of every group it belongs to."""
        others = sorted({c for g in self.related if category in g for c in g} - {category})
        return (category, *others)


@dataclass(frozen=True)
class Score:
    """A candidate's score and its parts (each in [0, 1]) with the weights that summed them."""

    total: float
    parts: dict[str, float]
    distance_m: float
    hours: float

    def explain(self, weights: Mapping[str, float], lang: str = "zh") -> str:
        labels = PART_LABELS_ZH if lang == "zh" else PART_LABELS_EN
        return " + ".join(f"{labels[k]} {weights.get(k, 0):.2f}×{v:.2f}" for k, v in self.parts.items())


def _clamp(x: float) -> float:
    return max(0.0, min(1.0, x))


#: a case links itself only to a near-copy: besides the pack's ``auto_link_score``, the texts must say
#: the same thing. Token-set similarity forgives a shared prefix ("浏览器测试：人行道积水" and
#: "浏览器测试：回访" score 0.8), and place, time and category alone give 0.6 of the score: two different
#: complaints from one spot in one minute are the dispatcher's to judge, one click away
AUTO_LINK_MIN_TEXT = 0.9


def links_itself(rules: RepeatRules, total: float, parts: Mapping[str, float]) -> bool:
    """Whether a new case's best candidate (its score and parts) is linked by the intake rule."""
    return total >= rules.auto_link_score and parts.get("text", 0.0) >= AUTO_LINK_MIN_TEXT


def score(rules: RepeatRules, reach: Reach, *, distance_m: float, hours: float, text_a: str, text_b: str,
          same_category: bool) -> Score:
    """The score of one candidate: distance and time fall linearly to 0 at the category's radius and
    window; text is the token-set similarity of the two texts; category is 1 for the same category
    and ``related_factor`` for a related one."""
    parts = {"distance": _clamp(1.0 - distance_m / reach.radius_m) if reach.radius_m > 0 else 0.0,
             "time": _clamp(1.0 - abs(hours) / reach.window_h) if reach.window_h > 0 else 0.0,
             "text": text_similarity(text_a, text_b),
             "category": 1.0 if same_category else rules.related_factor}
    w = rules.weights
    total = sum(w.get(k, 0.0) * v for k, v in parts.items()) / (sum(w.values()) or 1.0)
    return Score(round(total, 4), {k: round(v, 4) for k, v in parts.items()}, round(distance_m, 1), round(hours, 2))


_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)


@lru_cache(maxsize=1)
def _jieba():
    import jieba
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()          # builds its prefix dictionary from the file in the package (no download)
    return jieba


@lru_cache(maxsize=4096)
def tokens(text: str) -> str:
    """``text`` cut into words (jieba, precise mode), punctuation dropped, joined by spaces."""
    words = (_PUNCT.sub("", w) for w in _jieba().lcut(text or "", HMM=True))
    return " ".join(w for w in words if w)


def text_similarity(a: str, b: str) -> float:
    """Token-set similarity (rapidfuzz) of the two texts' words, in [0, 1]; 0 when either is empty."""
    from rapidfuzz import fuzz
    ta, tb = tokens(a), tokens(b)
    if not ta or not tb:
        return 0.0
    return fuzz.token_set_ratio(ta, tb) / 100.0
