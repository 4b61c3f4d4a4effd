"""The workbench's queue page query and case detail (incidents.case_queries.queue_page / case_detail),
on SQLite and PostgreSQL: every view's filter, sorting by each sortable column, search, column
filters, paging totals, and department scoping."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents import services
from incidents.queries import cases as case_queries
from incidents.model import Priority, Role, State
from incidents.tables import Incident
from tests.integration.helpers import NOW

OWN = "330106-CGJ"          # 西湖区城市管理局
OTHER = "HZ-CGJ"
DISP = services.Actor("t-disp", Role.DISPATCHER)
DEPT = services.Actor("t-dept", Role.DEPARTMENT, OWN)
INSP = services.Actor("t-insp", Role.INSPECTOR)
LEAD = services.Actor("t-lead", Role.LEADER)

# name: (actions to reach its state, department, title, light to force)
PLAN = {
    "reported": ([], None, "人行道积水 甲", None),
    "registered": (["register"], None, "路灯不亮 乙", None),
    "green": (["register", "dispatch"], OWN, "垃圾满溢 丙", "green"),
    "yellow": (["register", "dispatch"], OTHER, "井盖缺失 丁", "yellow"),
    "red": (["register", "dispatch", "sign"], OWN, "占道经营 戊", "red"),
    "resolved": (["register", "dispatch", "sign", "resolve"], OWN, "乱贴广告 己", None),
    "suspended": (["register", "suspend"], None, "违章搭建 庚", None),
    "closed": (["register", "dispatch", "sign", "resolve", "verify_pass"], OWN, "道路破损 辛", None),
    "supervised": (["register", "supervise"], None, "噪音扰民 壬", None),
}
ACTORS = {"register": DISP, "dispatch": DISP, "suspend": DISP, "sign": DEPT, "resolve": DEPT,
          "verify_pass": INSP, "supervise": LEAD}


@pytest.fixture
def cases(server):
    """One case per row of PLAN, reported a minute apart; {name: id}."""
    rules = get_runtime(server).rules
    ids = {}
    with server.app_context(), get_db(server).session_scope() as s:
        for i, (name, (actions, dept, title, _)) in enumerate(PLAN.items()):
            at = NOW - timedelta(hours=3) + timedelta(minutes=i)
            case = services.create_case(
                s, rules, source="t", external_id=name, channel="12345", title=title, reported_at=at, now=at,
                category_code="E0101", address=f"文三路 {i + 1} 号", lon=120.10 + i * 0.001, lat=30.27,
                priority=list(Priority)[i % 3], reporter_name="王小明", reporter_phone="13812345678")
            for action in actions:
                actor = ACTORS[action]
                if action in ("sign", "resolve"):
                    actor = services.Actor(actor.username, actor.role, dept)
                services.perform(s, rules, actor, case.id, action, version=case.version, now=at,
                                 department=dept if action == "dispatch" else None,
                                 note="挂账审批" if action == "suspend" else "", level=2 if action == "supervise" else None)
            ids[name] = case.id
        # the traffic light at NOW, forced for the three running cases
        marks = {"green": (NOW + timedelta(hours=5), NOW + timedelta(hours=9)),
                 "yellow": (NOW - timedelta(hours=1), NOW + timedelta(hours=2)),
                 "red": (NOW - timedelta(hours=4), NOW - timedelta(hours=1))}
        for name, (warn, deadline) in marks.items():
            s.execute(update(Incident).where(Incident.id == ids[name])
                      .values(warn_at=warn, deadline=deadline).execution_options(synchronize_session=False))
    return ids


def page(server, **kw):
    kw.setdefault("end", 500)
    with server.app_context():
        return case_queries.queue_page(NOW, calendar=get_runtime(server).calendar, **kw)


def names_of(cases, result) -> set[str]:
    back = {v: k for k, v in cases.items()}
    return {back[r["id"]] for r in result.rows if r["id"] in back}


OPEN = set(PLAN) - {"closed"}
VIEWS = {
    "all_open": OPEN,
    "pending_register": {"reported"},
    "pending_dispatch": {"registered", "supervised"},
    "yellow": {"yellow"},
    "red": {"red"},
    "pending_verify": {"resolved"},
    "supervised": {"supervised"},
    "suspended": {"suspended"},
}


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_each_ready_made_view_filters_in_the_database(server, cases, view):
    result = page(server, view=view, role="dispatcher")
    assert names_of(cases, result) == VIEWS[view]
    assert result.total == len(VIEWS[view])


@pytest.mark.parametrize("role, expected", [
    ("dispatcher", {"reported", "registered", "supervised"}),
    ("department", {"green", "red"}),
    ("inspector", {"resolved"}),
    ("leader", {"supervised"}),
])
def test_my_todo_depends_on_the_role(server, cases, role, expected):
    dept = OWN if role == "department" else None
    assert names_of(cases, page(server, view="my_todo", role=role, department_code=dept)) == expected


def test_an_unknown_view_shows_nothing(server, cases):
    assert page(server, view="everything; drop table", role="dispatcher").total == 0


STATE_ORDER = {s.value: i for i, s in enumerate(State)}
PRIORITY_ORDER = {"normal": 0, "urgent": 1, "emergency": 2}
SORT_KEYS = {
    "id": lambda r: r["id"], "reported_at": lambda r: r["reported_at"], "title": lambda r: r["title"],
    "category": lambda r: r["category"], "state": lambda r: STATE_ORDER[r["state"]],
    "priority": lambda r: PRIORITY_ORDER[r["priority"]], "department": lambda r: r["department"],
    "district": lambda r: r["district"], "remaining": lambda r: r["deadline"], "light": lambda r: r["deadline"],
    "supervise_level": lambda r: r["supervise_level"],
}


@pytest.mark.parametrize("col", sorted(SORT_KEYS))
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_sorting_by_each_column_runs_in_the_database(server, cases, col, direction):
    rows = page(server, view="all_open", role="dispatcher", sort_model=[{"colId": col, "sort": direction}]).rows
    assert len(rows) == len(OPEN)
    values = [SORT_KEYS[col](r) for r in rows]
    present = [v for v in values if v is not None]
    assert present == sorted(present, reverse=direction == "desc"), (col, direction, values)
    if col in ("remaining", "light"):
        assert values[len(present):] == [None] * (len(values) - len(present)), "no deadline sorts last"


def test_the_default_order_puts_the_nearest_deadline_first(server, cases):
    rows = [r for r in page(server, view="all_open", role="dispatcher").rows if r["light"]]
    assert [r["id"] for r in rows] == [cases["red"], cases["yellow"], cases["green"]]
    assert rows[0]["remaining_hours"] < 0 < rows[2]["remaining_hours"]
    assert rows[0]["light"] == "red" and rows[1]["light"] == "yellow" and rows[2]["light"] == "green"


def test_search_finds_by_words_in_title_or_address_and_by_case_number(server, cases):
    assert names_of(cases, page(server, view="all_open", role="dispatcher", q="井盖")) == {"yellow"}
    assert names_of(cases, page(server, view="all_open", role="dispatcher", q="文三路 2 号")) == {"registered"}
    assert names_of(cases, page(server, view="all_open", role="dispatcher", q=f"#{cases['red']}")) == {"red"}
    assert page(server, view="all_open", role="dispatcher", q="100%_不存在").total == 0


def test_column_filters_of_the_grid_run_in_the_database(server, cases):
    by_title = page(server, view="all_open", role="dispatcher",
                    filter_model={"title": {"filterType": "text", "type": "contains", "filter": "垃圾"}})
    assert names_of(cases, by_title) == {"green"}
    by_id = page(server, view="all_open", role="dispatcher",
                 filter_model={"id": {"filterType": "number", "type": "equals", "filter": cases["reported"]}})
    assert names_of(cases, by_id) == {"reported"}
    by_dept = page(server, view="all_open", role="dispatcher",
                   filter_model={"department": {"filterType": "text", "type": "contains", "filter": "西湖区"}})
    assert names_of(cases, by_dept) == {"green", "red", "resolved"}


def test_paging_gives_disjoint_blocks_with_one_total(server, cases):
    blocks = [page(server, view="all_open", role="dispatcher", start=i, end=i + 3) for i in range(0, 9, 3)]
    assert {b.total for b in blocks} == {len(OPEN)}
    ids = [r["id"] for b in blocks for r in b.rows]
    assert len(ids) == len(set(ids)) == len(OPEN)
    assert [len(b.rows) for b in blocks] == [3, 3, 2]


def test_a_department_sees_only_its_own_cases(server, cases):
    mine = page(server, view="all_open", role="department", department_code=OWN)
    assert names_of(cases, mine) == {"green", "red", "resolved"}
    assert {r["department_code"] for r in mine.rows} == {OWN}
    assert page(server, view="all_open", role="department", department_code=None).total == 0
    found = page(server, view="all_open", role="department", department_code=OWN, q=f"#{cases['yellow']}")
    assert found.total == 0, "another department's case is not found even by its number"


def test_case_detail_hides_other_departments_cases_and_masks_the_reporter(server, cases):
    with server.app_context():
        rules = get_runtime(server).rules
        other = case_queries.case_detail(NOW, cases["yellow"], rules=rules, role="department", department_code=OWN)
        mine = case_queries.case_detail(NOW, cases["red"], rules=rules, role="department", department_code=OWN)
        disp = case_queries.case_detail(NOW, cases["registered"], rules=rules, role="dispatcher", department_code=None)
        viewer = case_queries.case_detail(NOW, cases["registered"], rules=rules, role="viewer", department_code=None)
    assert other is None
    assert mine["reporter_phone"] == "138****5678" and mine["reporter_name"] == "王**"
    assert set(mine["actions"]) == {"resolve", "return", "extend", "suspend", "contact"}
    assert disp["reporter_phone"] == "13812345678"
    assert disp["suggestion"]["department_code"] == OWN and "134" in disp["suggestion"]["reason"]
    assert set(disp["actions"]) == {"dispatch", "void", "suspend", "merge", "link_repeat"}
    assert viewer["actions"] == [] and viewer["reporter_masked"]
    assert [e["action"] for e in disp["timeline"]] == ["report", "register"]
    assert {d["id"] for d in disp["duplicates"]} <= {cases[n] for n in OPEN}


@pytest.mark.parametrize("role, expected", [
    ("dispatcher", tuple(v for v in case_queries.QUEUE_VIEWS if v != "pending_verify")),   # 核查 is the inspector's
    ("department", ("my_todo", "all_open", "yellow", "red", "supervised")),
    ("inspector", ("my_todo", "all_open", "pending_verify")),
    ("leader", ("my_todo", "all_open", "yellow", "red", "supervised")),
    ("admin", ("my_todo", "all_open")),
])
def test_each_role_is_offered_only_the_views_it_can_act_on(role, expected):
    assert case_queries.views_for(role) == tuple(expected)


def test_a_departments_todo_puts_urgent_and_supervised_first_then_new_cases_flagged_new(server, cases):
    """紧急/特急 and 督办 first; then the cases just dispatched to it (待签收, newest first), flagged new;
    then the rest by deadline — even when the rest are nearer their deadline."""
    rules = get_runtime(server).rules
    extra = {}
    with server.app_context(), get_db(server).session_scope() as s:
        for name, actions, minutes in (("old_signed", ["register", "dispatch", "sign"], 1),
                                       ("new_first", ["register", "dispatch"], 2),
                                       ("new_second", ["register", "dispatch"], 3)):
            at = NOW - timedelta(minutes=60 - minutes)
            case = services.create_case(s, rules, source="t", external_id=name, channel="12345", title=name,
                                        reported_at=at, now=at, category_code="E0101", lon=120.1, lat=30.27,
                                        priority=Priority.NORMAL)
            for action in actions:
                actor = services.Actor(DEPT.username, DEPT.role, OWN) if action == "sign" else DISP
                services.perform(s, rules, actor, case.id, action, version=case.version, now=at,
                                 department=OWN if action == "dispatch" else None)
            extra[name] = case.id
        # the signed one is nearest its deadline: without the rule it would come first
        s.execute(update(Incident).where(Incident.id == extra["old_signed"])
                  .values(deadline=NOW + timedelta(minutes=30)).execution_options(synchronize_session=False))
    rows = page(server, view="my_todo", role="department", department_code=OWN).rows
    order = [r["id"] for r in rows]
    attention = {cases["green"], cases["red"]}               # 特急 (dispatched) and 紧急 (signed) in PLAN
    assert set(order[:2]) == attention and all(r["attention"] for r in rows[:2])
    assert order[2:5] == [extra["new_second"], extra["new_first"], extra["old_signed"]]
    flags = {r["id"]: r["new"] for r in rows}
    assert flags[extra["new_first"]] and flags[extra["new_second"]] and not flags[extra["old_signed"]]
    # the dispatcher's rows are never flagged new (new means: waiting for this department's 签收)
    assert not any(r["new"] for r in page(server, view="all_open", role="dispatcher").rows)
