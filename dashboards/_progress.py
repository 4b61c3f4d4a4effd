"""The citizen's 进度查询 page (/progress): plain server-rendered HTML like the login page — no
script, no session — that posts ``case`` and ``digits`` to itself (data_sources.web.progress).
It shows what incidents.queries.progress gives (nothing personal), dates in the city's timezone."""
from __future__ import annotations

from html import escape
from typing import Optional

from dashboards._components import local_time
from dashboards._i18n import lang, t
from incidents.model import STATE_LABELS_EN, STATE_LABELS_ZH, State
from incidents.queries import reference

PAGE = """<!DOCTYPE html>
<html lang="{html_lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · {app}</title>
<link rel="stylesheet" href="/assets/cityops.css">
</head><body class="login-body progress-body">
<main class="login-card progress-card">
  <div class="brand login-brand"><span class="brand-mark">◉</span><span>{city} · {app}</span></div>
  <h1>{title}</h1>
  {body}
  <p class="login-hint progress-privacy">{privacy}</p>
  <p class="progress-foot"><a href="/login">{login}</a><a href="/progress?lang={other}">{other_label}</a></p>
</main></body></html>"""

FORM = """<p class="progress-intro">{intro}</p>
  {error}
  <form method="post" action="/progress" id="progress-form">
    <label for="progress-case">{case_label}</label>
    <input id="progress-case" name="case" inputmode="numeric" autocomplete="off" required maxlength="13"
           placeholder="1024" value="{case}"{focus_case}>
    <label for="progress-digits">{digits_label}</label>
    <input id="progress-digits" name="digits" inputmode="numeric" autocomplete="off" required maxlength="4"
           pattern="[0-9]{{4}}" placeholder="••••"{focus_digits}>
    <button type="submit" id="progress-submit">{button}</button>
  </form>"""

STEPS = (("reported_at", "progress_reported"), ("dispatched_at", "progress_dispatched"),
         ("resolved_at", "progress_resolved"), ("closed_at", "progress_closed"))


def _error_text(error: str, retry_after: Optional[int]) -> str:
    if error != "too_many" or not retry_after:
        return t(f"progress_{error}")
    seconds = int(retry_after)
    if seconds <= 90:
        wait = f"{seconds} 秒" if lang() != "en" else f"{seconds} s"
    else:
        wait = f"{-(-seconds // 60)} 分钟" if lang() != "en" else f"{-(-seconds // 60)} min"
    return t("progress_too_many_wait", wait=wait)


def _answer(a: dict) -> str:
    labels = STATE_LABELS_EN if lang() == "en" else STATE_LABELS_ZH
    state = State(a["state"])

    def kv(key: str, value: Optional[str], cls: str = "") -> str:
        return (f'<div class="progress-kv {cls}"><dt>{escape(t(key))}</dt>'
                f'<dd>{escape(value or "—")}</dd></div>')
    steps = "".join(
        f'<li class="{"done" if a[field] else "todo"}"><span class="step-label">{escape(t(key))}</span>'
        f'<span class="step-at">{escape(local_time(a[field], "%Y-%m-%d %H:%M") if a[field] else "—")}</span></li>'
        for field, key in STEPS)
    return (f'<section class="progress-answer" id="progress-answer" aria-live="polite">'
            f'<div class="progress-head"><span class="progress-no">#{a["case"]}</span>'
            f'<span class="state-chip s-{state.value}" id="progress-state">{escape(labels[state])}</span></div>'
            f'<dl class="progress-kvs">'
            + kv("progress_category", a["category"])
            + kv("progress_district", a["district"])
            + kv("progress_department", a["department"] or t("progress_not_dispatched"), "dept")
            + f'</dl><ol class="progress-steps">{steps}</ol>'
            f'<p class="progress-tz muted">{escape(t("progress_tz", city=_city_name()))}</p>'
            f'<p><a class="progress-again" href="/progress" id="progress-again">{escape(t("progress_again"))}</a></p>'
            f'</section>')


def _city_name() -> str:
    city = reference.city_info()
    return city.title if lang() != "en" else city.title_en


def render(*, case: str = "", answer: Optional[dict] = None, error: Optional[str] = None,
           retry_after: Optional[int] = None) -> str:
    other = "en" if lang() != "en" else "zh-CN"
    if answer is not None:
        body = _answer(answer)
    else:
        err = (f'<p class="login-error" role="alert" id="progress-error">{escape(_error_text(error, retry_after))}</p>'
               if error else "")
        body = FORM.format(intro=escape(t("progress_intro")), error=err, case_label=escape(t("progress_case")),
                           digits_label=escape(t("progress_digits")), button=escape(t("progress_button")),
                           case=escape(case or ""),
                           # a retry keeps the number: the cursor goes to the digits
                           focus_case="" if case else " autofocus", focus_digits=" autofocus" if case else "")
    return PAGE.format(html_lang="en" if lang() == "en" else "zh-CN", title=escape(t("progress_title")),
                       app=escape(t("app_title")), city=escape(_city_name()), body=body,
                       privacy=escape(t("progress_privacy")), login=escape(t("progress_login")),
                       other=other, other_label="English" if other == "en" else "中文")
