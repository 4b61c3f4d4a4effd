"""The login page: plain server-rendered HTML that posts ``username``, ``password`` and the session's
CSRF token to /login. It needs no Dash callback (and no script), so it works before a session exists."""
from __future__ import annotations

from html import escape
from typing import Optional

from flask_wtf.csrf import generate_csrf

from dashboards._i18n import lang, t

PAGE = """<!DOCTYPE html>
<html lang="{html_lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · {app}</title>
<link rel="stylesheet" href="/assets/cityops.css">
</head><body class="login-body">
<main class="login-card">
  <div class="brand login-brand"><span class="brand-mark">◉</span><span>{app}</span></div>
  <h1>{title}</h1>
  {error}
  <form method="post" action="/login" id="login-form">
    <label for="username">{username_label}</label>
    <input id="username" name="username" autocomplete="username" required value="{username}"{focus_user}>
    <label for="password">{password_label}</label>
    <input id="password" name="password" type="password" autocomplete="current-password" required{focus_password}>
    <input type="hidden" name="csrf_token" value="{csrf}">
    {next_field}
    <button type="submit" id="login-submit">{button}</button>
  </form>
  <p class="login-hint">{hint}</p>
  <p class="login-lang"><a href="/progress" id="progress-link" class="progress-link">{progress}</a><a href="/login?lang={other}">{other_label}</a></p>
</main></body></html>"""


def _error_text(error: str, retry_after: Optional[int]) -> str:
    if not retry_after:
        return t(error)
    seconds = int(retry_after)
    if seconds <= 90:
        wait = f"{seconds} 秒" if lang() != "en" else f"{seconds} s"
    else:
        minutes = -(-seconds // 60)
        wait = f"{minutes} 分钟" if lang() != "en" else f"{minutes} min"
    return t(error + "_wait", wait=wait)


def render(*, next_url: Optional[str], error: Optional[str], username: str = "",
           retry_after: Optional[int] = None) -> str:
    other = "en" if lang() != "en" else "zh-CN"
    return PAGE.format(
        html_lang="en" if lang() == "en" else "zh-CN", title=t("login_title"), app=t("app_title"),
        error=f'<p class="login-error" role="alert">{escape(_error_text(error, retry_after))}</p>' if error else "",
        username_label=t("username"), password_label=t("password"), button=t("login_button"),
        username=escape(username), csrf=escape(generate_csrf()),
        # a retry (wrong password, throttled, stale form) keeps the username: the cursor goes to the password
        focus_user="" if username else " autofocus", focus_password=" autofocus" if username else "",
        next_field=f'<input type="hidden" name="next" value="{escape(next_url)}">' if next_url else "",
        hint=t("login_hint"), progress=t("progress_link"), other=other, other_label="English" if other == "en" else "中文")
