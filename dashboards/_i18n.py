"""UI text in Chinese (default) and English. ``t(key)`` answers in the user's language:
the session's choice (``?lang=en``), else CITYOPS_LANG."""
from __future__ import annotations

from flask import current_app, has_request_context, session

TEXT: dict[str, tuple[str, str]] = {
    "app_title": ("城市运行一网统管", "CityOps — unified city operations"),
    "nav_wall": ("态势大屏", "Wall"),
    "nav_brief": ("领导简报", "KPI brief"),
    "nav_dispatch": ("派遣工作台", "Workbench"),
    "logout": ("退出", "Log out"),
    "login_title": ("登录", "Sign in"),
    "username": ("用户名", "Username"),
    "password": ("密码", "Password"),
    "login_button": ("登录", "Sign in"),
    "bad_credentials": ("用户名或密码不正确", "Wrong username or password"),
    "login_hint": ("演示账号与密码在首次启动时打印于控制台", "Demo accounts and passwords are printed on the console at first start"),
    "forbidden": ("您的角色无权查看此页面", "Your role may not open this page"),
    "updated_at": ("数据更新于", "Data as of"),
    "today_reported": ("今日上报", "Reported today"),
    "today_registered": ("今日立案", "Registered today"),
    "today_dispatched": ("今日派遣", "Dispatched today"),
    "today_closed": ("今日结案", "Closed today"),
    "open_cases": ("在办案件", "Open cases"),
    "overdue": ("超期未处置", "Overdue, open"),
    "yellow": ("即将超期", "Due soon"),
    "green": ("正常", "On track"),
    "by_state": ("案件状态分布", "Cases by state"),
    "trend_24h": ("近24小时上报", "Reported, last 24 h"),
    "top_categories": ("近24小时高发问题", "Top problems, last 24 h"),
    "channels": ("今日来源渠道", "Channels today"),
    "recent": ("最新动态", "Latest activity"),
    "map_title": ("在办案件分布", "Open cases"),
    "cases_unit": ("件", "cases"),
    "hours_unit": ("小时", "h"),
    "district": ("区县", "District"),
    "department": ("部门", "Department"),
    "dispatched_n": ("派遣数", "Dispatched"),
    "closed_n": ("结案数", "Closed"),
    "closure_rate": ("结案率", "Closure rate"),
    "on_time_rate": ("按期处置率", "On-time disposal"),
    "overdue_open": ("超期未处置", "Overdue open"),
    "rework_n": ("返工数", "Reworked"),
    "brief_title": ("运行简报（近30天）", "Operations brief (last 30 days)"),
    "brief_period": ("统计口径：近30天内派遣的案件，按当前承办部门汇总", "Scope: cases dispatched in the last 30 days, by their current department"),
    "queue_title": ("待办队列", "Queue"),
    "col_id": ("案件号", "Case"),
    "col_reported": ("上报时间", "Reported"),
    "col_title": ("问题", "Problem"),
    "col_category": ("类别", "Category"),
    "col_state": ("状态", "State"),
    "col_light": ("亮灯", "Light"),
    "col_deadline": ("处置时限", "Deadline"),
    "col_department": ("承办部门", "Department"),
    "col_district": ("区县", "District"),
    "view_all_open": ("全部在办", "All open"),
    "view_pending_register": ("待立案", "To register"),
    "view_pending_dispatch": ("待派遣", "To dispatch"),
    "view_yellow": ("即将超期", "Due soon"),
    "view_red": ("已超期", "Overdue"),
    "view_pending_verify": ("待核查", "To verify"),
    "view_suspended": ("挂账", "Suspended"),
    "rows_shown": ("显示前 {n} 条，共 {total} 条", "First {n} of {total}"),
    "my_department": ("本部门：{name}", "My department: {name}"),
    "legend_open": ("在办案件数", "Open cases"),
    "no_data": ("暂无数据", "No data"),
    "share": ("占比", "Share"),
    "stale": ("数据连接中断，显示的是 {t} 的数据", "Data link lost: showing data as of {t}"),
}


def lang() -> str:
    if has_request_context():
        chosen = session.get("lang")
        if chosen in ("zh-CN", "en"):
            return chosen
        return current_app.config.get("LANG", "zh-CN")
    return "zh-CN"


def t(key: str, **kw) -> str:
    zh, en = TEXT[key]
    s = en if lang() == "en" else zh
    return s.format(**kw) if kw else s
