"""The brief's exports rendered: the PDF (A4, the CJK font embedded) and the Excel file (the KPIs
and the cases behind them). Both render the same ``incidents.queries.brief.brief`` the page
renders, with the page's formatting (``_brief_view``); the download routes ``/brief/export.pdf``
and ``/brief/export.xlsx`` are a door, in ``data_sources.web.exports``."""
from __future__ import annotations

import io
import numbers
import os
from datetime import datetime, timezone
from xml.sax.saxutils import escape as xml_escape
from zoneinfo import ZoneInfo

from flask import current_app

from dashboards import _brief_view as bv
from dashboards._components import city_tz
from incidents import kpis
from incidents.model import STATE_LABELS_ZH

#: TrueType CJK fonts from Debian packages (reportlab embeds TrueType outlines only); the first found is used
CJK_FONTS = ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
             "/usr/share/fonts/truetype/arphic/uming.ttc")
FONT_NAME = "CityOpsCJK"


class FontMissing(RuntimeError):
    """No CJK TrueType font for the PDF: a setup error (the export door answers 503 font_missing)."""


def _title() -> str:
    from incidents.queries.reference import city_info
    return f"{city_info().title} 城市运行指标简报"


# =========================================================================== PDF


def cjk_font() -> str:
    """Registers the CJK font with reportlab once; a missing font is a clear setup error."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    if FONT_NAME in pdfmetrics.getRegisteredFontNames():
        return FONT_NAME
    configured = current_app.config.get("PDF_FONT")   # app.DEFAULTS: CITYOPS_PDF_FONT reaches it
    for path in ([configured] if configured else []) + list(CJK_FONTS):
        if path and os.path.exists(path):
            pdfmetrics.registerFont(TTFont(FONT_NAME, path, subfontIndex=0))
            return FONT_NAME
    raise FontMissing("no CJK TrueType font installed for the PDF: run `make fonts` "
                      "(apt-get install fonts-wqy-zenhei) or set CITYOPS_PDF_FONT")


def _spark(values, target=None, width=70, height=16):
    from reportlab.graphics.shapes import Drawing, Line, PolyLine
    from reportlab.lib import colors
    d = Drawing(width, height)
    pts = [(i, v) for i, v in enumerate(values or []) if v is not None]
    if len(pts) < 2:
        return d
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    if target is not None and lo <= target <= hi:
        lo, hi = min(lo, target), max(hi, target)
    span = (hi - lo) or 1.0
    n = max(len(values) - 1, 1)

    def y(v):
        return 1 + (height - 2) * (v - lo) / span
    if target is not None and lo <= target <= hi:
        d.add(Line(0, y(target), width, y(target), strokeColor=colors.HexColor("#9aa7b8"), strokeWidth=0.4,
                   strokeDashArray=[2, 2]))
    d.add(PolyLine([c for i, v in pts for c in (width * i / n, y(v))], strokeColor=colors.HexColor("#1f6fb2"),
                   strokeWidth=0.9))
    return d


def brief_pdf(b: kpis.Brief) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    font = cjk_font()

    def _text(value, style):
        # a Paragraph parses its text as markup (<b>, <font>, <link>, &…;): names and titles from
        # the data are escaped, so they show as written and a stray "<" or "&" cannot break the build
        return Paragraph(xml_escape(str(value)), style)
    tz = city_tz()
    r = b.report
    base = ParagraphStyle("base", fontName=font, fontSize=8.5, leading=11, wordWrap="CJK")
    small = ParagraphStyle("small", parent=base, fontSize=7, leading=9, textColor=colors.HexColor("#444444"))
    h1 = ParagraphStyle("h1", parent=base, fontSize=16, leading=20, spaceAfter=4)
    h2 = ParagraphStyle("h2", parent=base, fontSize=11, leading=14, spaceBefore=8, spaceAfter=4,
                        textColor=colors.HexColor("#0b3d78"))
    grid = TableStyle([("FONTNAME", (0, 0), (-1, -1), font), ("FONTSIZE", (0, 0), (-1, -1), 8),
                       ("LEADING", (0, 0), (-1, -1), 10),
                       ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef6")),
                       ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#c5cfdb")),
                       ("VALIGN", (0, 0), (-1, -1), "MIDDLE"), ("ALIGN", (1, 1), (-1, -1), "RIGHT")])
    red, green = colors.HexColor("#b3261e"), colors.HexColor("#1e7a46")

    story = [_text(_title(), h1),
             _text(f"统计期：{bv.period_text(r.start, r.end, tz)}　　统计时点：{bv.local(r.as_of, tz)}（{tz}）", base),
             _text(f"环比：{bv.period_text(b.previous.start, b.previous.end, tz)}　　同比：{bv.period_text(b.last_year.start, b.last_year.end, tz)}"
                       "（对比期取相同进度，在相应时点统计）", small), Spacer(1, 4)]
    # the page a leader reads first: the period in three short paragraphs, written from its numbers
    lead = ParagraphStyle("lead", parent=base, fontSize=9.5, leading=14, leftIndent=8, bulletIndent=0)
    box = []
    for heading, lines in bv.summary(b).items():
        box.append(_text(heading, h2))
        box += [Paragraph(xml_escape(line), lead, bulletText="•") for line in lines]
    story += box + [Spacer(1, 6)]

    def kpi_table(codes):
        rows = [["指标", "数值", "目标", "环比", "同比", "分子 ÷ 分母", "走势"]]
        style = TableStyle(grid.getCommands())
        for i, code in enumerate(codes, start=1):
            k = r.kpis[code]
            rows.append([k.name, bv.with_unit(k.value, k.unit), bv.target_text(k).replace("目标 ", ""),
                         bv.change_text(k.value, b.previous.kpis[code].value, k.unit),
                         bv.change_text(k.value, b.last_year.kpis[code].value, k.unit),
                         bv.ratio_text(k), _spark(b.series.get(code), k.target)])
            if k.met is not None:
                style.add("TEXTCOLOR", (1, i), (1, i), green if k.met else red)
        t = Table(rows, colWidths=[30 * mm, 24 * mm, 22 * mm, 24 * mm, 24 * mm, 30 * mm, 26 * mm], repeatRows=1)
        t.setStyle(style)
        return t

    story += [_text("一、案件办理", h2), kpi_table(bv.CASE_CARDS),
              _text("二、一网通办 · 好差评", h2), kpi_table(bv.SERVICE_CARDS)]

    def ranking(report, by_label, limit=15):
        rk = report.ranking
        rows = [["名次", by_label, "立案量", "结案率", "按期处置率", "返工率", "综合指标值", "等级"]]
        for x in rk.ranked[:limit]:
            rows.append([x.rank, _text(x.name, base), f"{x.volume:,}", bv.with_unit(x.closure_rate, "%"),
                         bv.with_unit(x.on_time_disposal_rate, "%"), bv.with_unit(x.rework_rate, "%"),
                         f"{x.score:.1f}", x.grade])
        t = Table(rows, colWidths=[12 * mm, 52 * mm, 17 * mm, 20 * mm, 22 * mm, 18 * mm, 22 * mm, 12 * mm],
                  repeatRows=1)
        t.setStyle(TableStyle(grid.getCommands() + [("ALIGN", (0, 0), (1, -1), "LEFT")]))
        note = f"参与排名 {len(rk.ranked)} 个，立案量不足 {rk.min_volume} 件未参与排名 {len(rk.unranked)} 个"
        if len(rk.ranked) > limit:
            note += f"；此处列前 {limit} 名，完整排名见 Excel"
        return [t, _text(note, small)]

    story += [_text("三、部门综合指标排名", h2), *ranking(r, "部门"),
              _text("四、区县综合指标排名", h2), *ranking(b.districts, "区县")]
    rk = r.ranking
    if rk and rk.ranked:
        rows = [["红榜（最高）", "综合指标值", "黑榜（最低）", "综合指标值"]]
        for i in range(max(len(rk.red), len(rk.black))):
            a = rk.red[i] if i < len(rk.red) else None
            z = rk.black[i] if i < len(rk.black) else None
            rows.append([_text(a.name, base) if a else "", f"{a.score:.1f}（{a.grade}）" if a else "",
                         _text(z.name, base) if z else "", f"{z.score:.1f}（{z.grade}）" if z else ""])
        t = Table(rows, colWidths=[55 * mm, 30 * mm, 55 * mm, 30 * mm])
        t.setStyle(TableStyle(grid.getCommands() + [("ALIGN", (2, 0), (2, -1), "LEFT")]))
        story += [KeepTogether([_text("五、红黑榜（部门）", h2), t])]
    svc = bv.service_rows(r)
    if svc:
        rows = [["部门", "办件量", "网办件数", "网办率", "达标（≥ 85%）", "好评率", "按时办结率"]]
        style = TableStyle(grid.getCommands())
        for i, x in enumerate(svc, start=1):
            rows.append([_text(x["name"], base), f"{x['total']:,}", f"{x['online']:,}", bv.with_unit(x["online_rate"], "%"),
                         "达标" if x["met"] else "未达标", bv.with_unit(x["good_rating_rate"], "%"),
                         bv.with_unit(x["on_time_completion_rate"], "%")])
            style.add("TEXTCOLOR", (3, i), (4, i), green if x["met"] else red)
        t = Table(rows, colWidths=[52 * mm, 18 * mm, 18 * mm, 20 * mm, 22 * mm, 18 * mm, 22 * mm], repeatRows=1)
        t.setStyle(style)
        story += [_text("六、一网通办 网办率（按部门）", h2), t]
    if b.indicators:
        rows = [["分组", "指标", "数值", "目标", "环比", "数据期", "走势"]]
        for x in b.indicators:
            prev = b.indicators_previous.get(x.code)
            rows.append([x.group, _text(x.name, base), bv.with_unit(x.value, x.unit),
                         bv.target_text(x).replace("目标 ", ""),
                         bv.change_text(x.value, prev, x.unit) if x.period == "day" else "",
                         _text(x.covers, small), _spark(x.series, x.target, width=50)])
        t = Table(rows, colWidths=[20 * mm, 38 * mm, 24 * mm, 22 * mm, 22 * mm, 34 * mm, 20 * mm], repeatRows=1)
        t.setStyle(TableStyle(grid.getCommands() + [("ALIGN", (1, 0), (1, -1), "LEFT")]))
        story += [_text("七、热线及其他指标", h2), t]
    story += [_text("附：指标口径", h2)]
    # each formula begins with its KPI's name
    story += [_text(r.kpis[c].formula, small) for c in bv.CASE_CARDS + bv.SERVICE_CARDS]
    if rk:
        story.append(_text(rk.formula, small))

    generated = bv.local(datetime.now(timezone.utc), tz)

    def footer(canvas, doc):
        canvas.saveState()
        canvas.setFont(font, 7)
        canvas.setFillColor(colors.HexColor("#666666"))
        canvas.drawString(15 * mm, 10 * mm, f"CityOps · {_title()} · 生成于 {generated}")
        canvas.drawRightString(A4[0] - 15 * mm, 10 * mm, f"第 {doc.page} 页")
        canvas.restoreState()

    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=14 * mm,
                            bottomMargin=16 * mm, title=_title(), author="CityOps",
                            subject=f"{bv.period_text(r.start, r.end, tz)}")
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return out.getvalue()


# =========================================================================== Excel


#: what a cell shows where there is nothing to compare with (no earlier period, no denominator):
#: the page's "—", never a 0 that reads as a value
MISSING = "—"


def brief_xlsx(b: kpis.Brief, case_rows: list[dict], flags, path=None, progress=None):
    """Sheets: 概览 (the KPIs with target, 环比, 同比, numerator, denominator, 口径), 走势, 部门排名,
    区县排名, 一网通办, 其他指标 and 案件清单 (one row per case behind a case KPI, a column per
    KPI: 分子 / 分母). Values are numbers formatted as the page prints them (rates as fractions
    in 0.0%, counts #,##0, hours and scores #,##0.0, times yyyy-mm-dd hh:mm in city time), "—"
    where there is no comparison. XlsxWriter in constant-memory mode: each row goes to disk as it
    is written, so a quarter's 100k-row case list costs one row of memory. Writes ``path`` (and
    answers the number of case rows), or answers the file's bytes without one; ``progress(done,
    total)`` hears how far the case list is."""
    import tempfile

    if path is None:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "brief.xlsx")
            brief_xlsx(b, case_rows, flags, out, progress)
            with open(out, "rb") as fh:
                return fh.read()
    import xlsxwriter

    tz = city_tz()
    z = ZoneInfo(tz)
    r = b.report
    # and, should a write() slip in one day, the workbook still turns no string into a formula or URL
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True, "tmpdir": os.path.dirname(str(path)) or None,
                                         "strings_to_formulas": False, "strings_to_urls": False,
                                         "strings_to_numbers": False})
    bold = wb.add_format({"bold": True, "bg_color": "#DCE6F2"})
    title_fmt = wb.add_format({"bold": True, "font_size": 14})
    right = wb.add_format({"align": "right"})
    by_unit: dict[str, object] = {}

    def uf(unit):
        """The number format of a value in ``unit``, as the page prints it."""
        code = bv.excel_format(unit)
        if code not in by_unit:
            by_unit[code] = wb.add_format({"num_format": code})
        return by_unit[code]
    fmt = {"%": uf("%"), "float": uf("工作小时"), "int": uf("件"),
           "time": wb.add_format({"num_format": "yyyy-mm-dd hh:mm"}),
           "day": wb.add_format({"num_format": "yyyy-mm-dd"})}

    class Sheet:
        def __init__(self, title, widths):
            self.ws = wb.add_worksheet(title)
            self.row = 0
            for i, w in enumerate(widths):
                self.ws.set_column(i, i, w)

        def put(self, values, *, fmts=None, style=None, missing=()):
            """``missing``: the columns where None means "no comparison": they show "—"."""
            for col, v in enumerate(values):
                f = style or (fmts[col] if fmts and col < len(fmts) else None)
                if v is None:
                    if col in missing:
                        self.ws.write_string(self.row, col, MISSING, right)
                    elif f is not None:
                        self.ws.write_blank(self.row, col, None, f)
                    continue
                if isinstance(v, datetime):
                    self.ws.write_datetime(self.row, col, v, f or fmt["time"])
                elif isinstance(v, bool):
                    self.ws.write_boolean(self.row, col, v, f)
                elif f is None and isinstance(v, float) and not float(v).is_integer():
                    self.ws.write_number(self.row, col, v, fmt["float"])
                elif f is None and isinstance(v, numbers.Number):
                    self.ws.write_number(self.row, col, v, fmt["int"])
                elif isinstance(v, numbers.Number):
                    self.ws.write_number(self.row, col, v, f)
                else:
                    # text is text: a title "=HYPERLINK(…)" or "=cmd|' /C calc'!A0" stays visible
                    # text, never a formula, a DDE link or a URL (write() would make it one)
                    self.ws.write_string(self.row, col, str(v), f)
            self.row += 1

    def naive(dt):
        return dt.astimezone(z).replace(tzinfo=None) if dt is not None else None

    ws = Sheet("概览", [16, 18, 12, 8, 10, 8, 12, 14, 12, 14, 12, 12, 90])
    ws.put([_title()], style=title_fmt)
    ws.put(["统计期", bv.period_text(r.start, r.end, tz), "", "统计时点", bv.local(r.as_of, tz), "", tz])
    ws.put(["环比期", bv.period_text(b.previous.start, b.previous.end, tz), "", "同比期",
            bv.period_text(b.last_year.start, b.last_year.end, tz)])
    ws.put([])
    ws.put(["编码", "指标", "数值", "单位", "目标", "达标", "环比期数值", "环比变化", "同比期数值", "同比变化",
            "分子", "分母", "口径"], style=bold)
    for code in bv.CASE_CARDS + bv.SERVICE_CARDS:
        k = r.kpis[code]
        p, ly = b.previous.kpis[code].value, b.last_year.kpis[code].value
        u = uf(k.unit)
        ratio = uf("工作小时") if code == "mean_handling_hours" else fmt["int"]
        ws.put([code, k.name, k.value, k.unit, k.target, None if k.met is None else ("是" if k.met else "否"), p,
                bv.change_text(k.value, p, k.unit), ly, bv.change_text(k.value, ly, k.unit),
                k.numerator, k.denominator, k.formula], fmts=[None, None, u, None, u, None, u, right, u, right,
                                                            ratio, fmt["int"]],
               missing=(2, 6, 8, 11))

    codes = list(b.series)
    ws = Sheet("走势", [18] + [14] * len(codes))
    ws.put(["时段开始"] + [r.kpis[c].name for c in codes], style=bold)
    whole_days = all(bv.local(x.start, tz, "%H:%M") == "00:00" for x in b.buckets)
    for i, bucket in enumerate(b.buckets):
        ws.put([naive(bucket.start)] + [b.series[c][i] for c in codes],
               fmts=[fmt["day"] if whole_days else fmt["time"]] + [uf(r.kpis[c].unit) for c in codes],
               missing=range(1, len(codes) + 1))

    for title, report, label in (("部门排名", r, "部门"), ("区县排名", b.districts, "区县")):
        rk = report.ranking
        # 协办按时回复率 beside the score, as on the page: only where some unit assisted (not a weight of the score)
        assist = any(x.assist_reply_rate is not None for x in rk.ranked + rk.unranked)
        ws = Sheet(title, [8, 14, 34, 10, 10, 12, 10, 12, 10, 8] + ([14] if assist else []) + [30])
        ws.put(["名次", "编码", label, "立案量", "结案率", "按期处置率", "返工率", "办件量得分", "综合指标值", "等级"]
               + (["协办按时回复率"] if assist else []) + ["未参与排名原因"], style=bold)
        for x in rk.ranked + rk.unranked:
            ws.put([x.rank, x.code, x.name, x.volume, x.closure_rate, x.on_time_disposal_rate, x.rework_rate,
                    x.volume_score, x.score, x.grade] + ([x.assist_reply_rate] if assist else []) + [x.reason],
                   fmts=[fmt["int"], None, None, fmt["int"], fmt["%"], fmt["%"], fmt["%"], fmt["%"], uf("分"), None]
                   + ([fmt["%"]] if assist else []),
                   missing=(0, 4, 5, 6, 7, 8, 9) + ((10,) if assist else ()))
        ws.put([])
        ws.put([rk.formula])
        ws.put(["红榜"] + [x.name for x in rk.red])
        ws.put(["黑榜"] + [x.name for x in rk.black])

    ws = Sheet("一网通办", [14, 34, 12, 12, 10, 10, 10, 12])
    ws.put(["编码", "部门", "办件量", "网办件数", "网办率", "目标", "好评率", "按时办结率"], style=bold)
    for x in bv.service_rows(r):
        ws.put([x["code"], x["name"], x["total"], x["online"], x["online_rate"], x["target"], x["good_rating_rate"],
                x["on_time_completion_rate"]], fmts=[None, None, fmt["int"], fmt["int"]] + [fmt["%"]] * 4,
               missing=(4, 6, 7))

    ws = Sheet("其他指标", [12, 24, 28, 12, 10, 10, 12, 30, 60])
    ws.put(["分组", "编码", "指标", "数值", "单位", "目标", "环比期数值", "数据期", "口径"], style=bold)
    for x in b.indicators:
        u = uf(x.unit)
        ws.put([x.group, x.code, x.name, x.value, x.unit, x.target, b.indicators_previous.get(x.code), x.covers,
                x.formula], fmts=[None, None, None, u, None, u, u], missing=(3, 6))

    case_codes = list(flags.columns)
    ws = Sheet("案件清单", [10, 36, 18, 12, 26, 10, 17, 17, 17] + [10] * len(case_codes))
    ws.put(["每行一件案件；各指标列：分子 = 计入该指标分子，分母 = 仅在分母中。筛选某列即得该指标背后的案件。"])
    ws.put(["案件号", "问题", "类别", "区县", "部门", "状态", "上报时间", "处置时限", "结案时间"]
           + [r.kpis[c].name for c in case_codes], style=bold)
    ws.ws.autofilter(1, 0, 1 + len(case_rows), 8 + len(case_codes))
    ws.ws.freeze_panes(2, 1)
    label = {"N": "分子", "D": "分母"}
    states = {s.value: name for s, name in STATE_LABELS_ZH.items()}
    columns = [flags[c].to_numpy() for c in case_codes]
    position = _positions(flags.index)
    total = len(case_rows)
    for done, row in enumerate(case_rows, start=1):
        at = position(row["id"])
        marks = [label.get(col[at]) if at is not None else None for col in columns]
        ws.put([row["id"], row["title"], row["category"], row["district"], row["department"],
                states.get(row["state"], row["state"]), naive(row["reported_at"]), naive(row["deadline"]),
                naive(row["closed_at"])] + marks, fmts=[fmt["int"]])
        if progress is not None and (done % 1000 == 0 or done == total):
            progress(done, total)
    if progress is not None and total == 0:
        progress(0, 0)
    wb.close()
    return total


def _positions(index):
    """``position(case_id)``: the row of ``case_id`` in the flags. The case rows come in the flags'
    own order, so a cursor walking forward finds each at once and builds no id table as large as
    the list; rows in another order fall back to the index's lookup."""
    ids = index.to_numpy()
    state = {"at": 0, "ordered": True}

    def position(case_id):
        if state["ordered"]:
            at = state["at"]
            while at < len(ids) and int(ids[at]) != case_id:
                at += 1
            if at < len(ids):
                state["at"] = at + 1
                return at
            state["ordered"] = False
        try:
            return index.get_loc(case_id)
        except KeyError:
            return None
    return position


__all__ = ["FontMissing", "brief_pdf", "brief_xlsx"]
