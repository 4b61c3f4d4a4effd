"""HTML written on the server for the parts of a page that only show things: no callback reads
them, writes into them or listens to them. One Dash component then carries a whole table instead
of one component per row and cell.

Why: the browser pays for every Dash component it mounts (a wrapper bound to the renderer's
store, notified on each store change). The brief's body was 1,283 components (664 of them table
cells): headless Chromium spent ~3 s of main thread mounting them after the answer had arrived
(0.6 s), against ~0.2 s for the same page as about 60 components.

``tag`` escapes every text and attribute value (department and indicator names come from data);
only what ``tag`` built passes unescaped. ``block`` hands the result to ``dcc.Markdown`` with raw
HTML allowed: the whole string is one HTML block (no newline in it, so Markdown never splits or
reads it), which the component parses into plain React elements (no Dash wrapper each)."""
from __future__ import annotations

from html import escape

from dash import dcc

VOID = frozenset({"img", "br", "hr"})
#: Python-friendly attribute names → HTML ones
ATTRS = {"cls": "class", "colSpan": "colspan", "tabIndex": "tabindex"}


class Markup(str):
    """HTML built by :func:`tag`: safe to put in a page as it is."""


def text(value) -> str:
    """A text or attribute value, escaped; a newline as its character reference, so that the
    string stays one line (one Markdown HTML block)."""
    return escape(str(value), quote=True).replace("\n", "&#10;").replace("\r", "")


def _children(children) -> str:
    if children is None or children is False:
        return ""
    if isinstance(children, Markup):
        return children
    if isinstance(children, (list, tuple)):
        return "".join(_children(c) for c in children)
    return text(children)


def tag(name: str, children=None, **attrs) -> Markup:
    """``<name attrs>children</name>``: ``cls=`` gives the class, ``data_x=`` a ``data-x``
    attribute; attributes that are None or False are left out."""
    out = [name]
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        key = ATTRS.get(key, key.replace("_", "-"))
        out.append(f'{key}="{text(value)}"')
    head = " ".join(out)
    if name in VOID:
        # closed as XML: the Markdown component's HTML parser drops a whole block with a bare <img>
        return Markup(f"<{head} />")
    return Markup(f"<{head}>{_children(children)}</{name}>")


def block(markup: Markup, *, cls: str = "", id_: str | None = None) -> dcc.Markdown:
    """One component showing ``markup`` (built by :func:`tag`)."""
    if not isinstance(markup, Markup):
        raise TypeError("block() shows HTML built by tag() only")
    kw = {"id": id_} if id_ else {}
    return dcc.Markdown(str(markup), dangerously_allow_html=True, dedent=False, className=f"markup {cls}".strip(),
                        **kw)
