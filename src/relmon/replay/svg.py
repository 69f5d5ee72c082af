"""Tiny inline-SVG charts for the replay and timeline reports: no JavaScript, no fonts.

Every function returns one ``<svg>`` element as a string. Output is deterministic: numbers
are written with fixed precision and nothing depends on the clock or on dict order the
caller did not choose. Colours come from :data:`PALETTE` (Tableau 10, readable in print).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from html import escape
from typing import NamedTuple

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
# One colour per suppression reason, used by every chart and table that shows reasons, so a
# reason looks the same everywhere (Tableau 10; the most lasting reasons in the darker hues).
REASON_COLORS: dict[str, str] = {
    "OPTED_OUT": "#4e79a7",
    "OBJECTION": "#9c755f",
    "DO_NOT_CALL_REQUEST": "#b07aa1",
    "COMPLAINT": "#e15759",
    "DECIDING_IN_OWN_TIME": "#f28e2b",
    "RECENT_UPGRADE": "#59a14f",
    "CONTACT_CAP": "#edc948",
    "MIN_GAP": "#76b7b2",
    "FATIGUE": "#ff9da7",
    "IRRITATION_RISK": "#bab0ac",
    "RELATIONSHIP_LAPSED": "#7b4173",
}
OTHER_COLOR = "#7f7f7f"


def reason_color(code: str) -> str:
    """The colour of a reason code in every chart (grey for a code not in the contract)."""
    return REASON_COLORS.get(code, OTHER_COLOR)


FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"'
GRID = "#e3e3e3"
INK = "#333"


class Bar(NamedTuple):
    """One row of a horizontal bar chart: ``note`` is written after the value."""

    label: str
    value: float
    note: str = ""


class Line(NamedTuple):
    """One series of a line chart: points are (epoch seconds, y)."""

    name: str
    points: Sequence[tuple[int, float]]
    color: str
    dashed: bool = False


class Marker(NamedTuple):
    """A symbol on the time axis of a line chart (an event), with a hover title."""

    t: int
    y: float
    color: str
    title: str
    shape: str = "circle"  # circle, diamond, triangle


def _n(x: float) -> str:
    """A coordinate with one decimal, without a trailing ``.0``."""
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def nice_max(value: float) -> float:
    """A round number at or above ``value`` (1, 2, 2.5, 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * 0.999999:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _open(width: int, height: int, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" {FONT} '
        f'font-size="12">'
    )


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return (
        f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" fill="{INK}"{extra}>'
        f"{escape(text)}</text>"
    )


def x_axis_label(x: float, y: float, text: str) -> str:
    """The name of the x axis, centred under it."""
    return (
        f'<text class="axis-label" x="{_n(x)}" y="{_n(y)}" text-anchor="middle" fill="{INK}" '
        f'font-weight="600">{escape(text)}</text>'
    )


def y_axis_label(x: float, y: float, text: str) -> str:
    """The name of the y axis, written upwards, centred on it."""
    return (
        f'<text class="axis-label" x="{_n(x)}" y="{_n(y)}" text-anchor="middle" fill="{INK}" '
        f'font-weight="600" transform="rotate(-90 {_n(x)} {_n(y)})">{escape(text)}</text>'
    )


def legend(names: Sequence[str], colors: Sequence[str], x: float, y: float, width: int) -> str:
    """Swatches and names in rows that wrap at ``width``."""
    out = []
    cx, cy = x, y
    for name, color in zip(names, colors, strict=True):
        w = 24 + 8 * len(name)
        if cx + w > width and cx > x:
            cx, cy = x, cy + 18
        out.append(f'<rect x="{_n(cx)}" y="{_n(cy - 9)}" width="12" height="12" fill="{color}"/>')
        out.append(_text(cx + 16, cy + 1, name))
        cx += w + 10
    return "".join(out)


def legend_rows(names: Sequence[str], x: float, width: int) -> int:
    """How many rows :func:`legend` takes."""
    rows, cx = 1, x
    for name in names:
        w = 24 + 8 * len(name)
        if cx + w > width and cx > x:
            rows, cx = rows + 1, x
        cx += w + 10
    return rows


def hbar(
    rows: Sequence[Bar],
    *,
    value_text: Callable[[float], str],
    ref: float | None = None,
    ref_label: str = "",
    width: int = 820,
    label_width: int = 170,
    title: str = "bar chart",
    x_label: str = "",
) -> str:
    """Horizontal bars, one per row, with an optional dashed reference line (e.g. a baseline);
    ``x_label`` names the value axis."""
    row_h, top, note_w = 22, 26 if ref is not None else 8, 230
    height = top + row_h * max(len(rows), 1) + 24 + (18 if x_label else 0)
    axis_y = top + row_h * max(len(rows), 1) + 24  # what was the bottom before the label
    plot_w = width - label_width - note_w
    top_value = nice_max(max([r.value for r in rows] + [ref or 0.0, 1e-9]))
    scale = plot_w / top_value
    out = [_open(width, height, title)]
    x0 = label_width
    for i in range(5):
        gx = x0 + plot_w * i / 4
        out.append(
            f'<line x1="{_n(gx)}" y1="{top - 4}" x2="{_n(gx)}" y2="{axis_y - 20}" stroke="{GRID}"/>'
        )
        out.append(_text(gx, axis_y - 6, value_text(top_value * i / 4), "middle"))
    if x_label:
        out.append(x_axis_label(x0 + plot_w / 2, axis_y + 12, x_label))
    for i, row in enumerate(rows):
        y = top + i * row_h
        w = max(row.value * scale, 0.0)
        color = PALETTE[2] if ref is not None and row.value > ref else PALETTE[0]
        out.append(_text(x0 - 8, y + 15, _clip(row.label, 26), "end"))
        out.append(
            f'<rect x="{x0}" y="{y + 4}" width="{_n(w)}" height="{row_h - 8}" fill="{color}">'
            f"<title>{escape(row.label)}: {escape(value_text(row.value))} {escape(row.note)}"
            "</title></rect>"
        )
        out.append(_text(x0 + w + 6, y + 15, f"{value_text(row.value)}  {row.note}".rstrip()))
    if ref is not None:
        rx = x0 + ref * scale
        out.append(
            f'<line x1="{_n(rx)}" y1="{top - 6}" x2="{_n(rx)}" y2="{axis_y - 20}" '
            f'stroke="{INK}" stroke-width="1.5" stroke-dasharray="5,3"/>'
        )
        out.append(_text(rx, 14, f"{ref_label} {value_text(ref)}", "middle", ' font-weight="600"'))
    out.append("</svg>")
    return "".join(out)


def stacked_hbar(
    rows: Sequence[tuple[str, Sequence[float]]],
    series: Sequence[str],
    *,
    width: int = 820,
    label_width: int = 170,
    title: str = "stacked bar chart",
    colors: Sequence[str] | None = None,
    x_label: str = "",
) -> str:
    """Horizontal bars split into the named series (same order as each row's values), in
    ``colors`` (default: the palette in order); ``x_label`` names the value axis."""
    if colors is None:
        colors = [PALETTE[i % len(PALETTE)] for i in range(len(series))]
    row_h = 22
    legend_h = 18 * legend_rows(series, label_width, width) + 8
    top = legend_h + 6
    axis_y = top + row_h * max(len(rows), 1) + 24
    height = axis_y + (18 if x_label else 0)
    plot_w = width - label_width - 70
    top_value = nice_max(max([sum(v) for _l, v in rows] + [1.0]))
    scale = plot_w / top_value
    out = [_open(width, height, title), legend(series, colors, label_width, 14, width)]
    x0 = label_width
    for i in range(5):
        gx = x0 + plot_w * i / 4
        out.append(
            f'<line x1="{_n(gx)}" y1="{top - 4}" x2="{_n(gx)}" y2="{axis_y - 20}" stroke="{GRID}"/>'
        )
        out.append(_text(gx, axis_y - 6, f"{top_value * i / 4:,.0f}", "middle"))
    if x_label:
        out.append(x_axis_label(x0 + plot_w / 2, axis_y + 12, x_label))
    for i, (label, values) in enumerate(rows):
        y = top + i * row_h
        out.append(_text(x0 - 8, y + 15, _clip(label, 26), "end"))
        x = float(x0)
        for name, color, value in zip(series, colors, values, strict=True):
            if value <= 0:
                continue
            w = value * scale
            out.append(
                f'<rect x="{_n(x)}" y="{y + 4}" width="{_n(w)}" height="{row_h - 8}" '
                f'fill="{color}"><title>{escape(label)}, {escape(name)}: {value:,.0f}</title>'
                "</rect>"
            )
            x += w
        out.append(_text(x + 6, y + 15, f"{sum(values):,.0f}"))
    out.append("</svg>")
    return "".join(out)


def stacked_area(
    days: Sequence[int],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    width: int = 900,
    height: int = 300,
    title: str = "stacked area chart",
    colors: Sequence[str] | None = None,
    x_label: str = "",
    y_label: str = "",
) -> str:
    """Series stacked over days (epoch day numbers, UTC), one colour each (``colors``,
    default the palette in order), with a legend and named axes."""
    names = [name for name, _v in series]
    if colors is None:
        colors = [PALETTE[i % len(PALETTE)] for i in range(len(series))]
    left, right = 72 if y_label else 56, 16
    legend_h = 18 * legend_rows(names, left, width) + 8
    top, bottom = legend_h + 8, 58 if x_label else 40
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(days)
    totals = [sum(values[i] for _name, values in series) for i in range(n)]
    top_value = nice_max(max([*totals, 1.0]))
    out = [_open(width, height, title), legend(names, colors, left, 14, width)]

    def px(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def py(v: float) -> float:
        return top + plot_h - plot_h * v / top_value

    _y_grid(out, left, width - right, py, top_value)
    base = [0.0] * n
    for (name, values), color in zip(series, colors, strict=True):
        upper = [b + v for b, v in zip(base, values, strict=True)]
        if any(v > 0 for v in values):
            pts = [f"{_n(px(i))},{_n(py(upper[i]))}" for i in range(n)]
            pts += [f"{_n(px(i))},{_n(py(base[i]))}" for i in range(n - 1, -1, -1)]
            out.append(
                f'<polygon points="{" ".join(pts)}" fill="{color}" fill-opacity="0.85" '
                f'stroke="{color}" stroke-width="0.5"><title>{escape(name)}</title></polygon>'
            )
        base = upper
    _x_dates(out, [(px(i), d * 86_400) for i, d in enumerate(days)], top + plot_h, plot_w)
    if x_label:
        out.append(x_axis_label(left + plot_w / 2, top + plot_h + 38, x_label))
    if y_label:
        out.append(y_axis_label(16, top + plot_h / 2, y_label))
    out.append("</svg>")
    return "".join(out)


def line_chart(
    t0: int,
    t1: int,
    lines: Sequence[Line],
    *,
    markers: Sequence[Marker] = (),
    bands: Sequence[tuple[int, int, str]] = (),
    hlines: Sequence[tuple[float, str, str]] = (),
    hspans: Sequence[tuple[float, int, int, str, str]] = (),
    y_max: float = 1.0,
    width: int = 960,
    height: int = 320,
    title: str = "line chart",
    x_label: str = "",
    y_label: str = "",
) -> str:
    """Lines over time (epoch seconds), shaded bands (start, end, title), event markers,
    horizontal reference lines (y, label, colour) and reference lines drawn only over a
    time span (y, start, end, label, colour: a threshold that applies only then)."""
    names = [ln.name for ln in lines] + ["suppressed"]
    colors = [ln.color for ln in lines] + ["#f4cccc"]
    left, right = 64 if y_label else 48, 40
    legend_h = 18 * legend_rows(names, left, width) + 8
    top, bottom = legend_h + 8, 58 if x_label else 40
    plot_w, plot_h = width - left - right, height - top - bottom
    span = max(t1 - t0, 1)

    def px(t: int) -> float:
        return left + plot_w * (min(max(t, t0), t1) - t0) / span

    def py(v: float) -> float:
        return top + plot_h - plot_h * min(max(v, 0.0), y_max) / y_max

    out = [_open(width, height, title), legend(names, colors, left, 14, width)]
    for start, end, band_title in bands:
        if end < t0 or start > t1:
            continue
        x0, x1 = px(start), px(end)
        out.append(
            f'<rect x="{_n(x0)}" y="{top}" width="{_n(max(x1 - x0, 1.0))}" height="{plot_h}" '
            f'fill="#f4cccc" fill-opacity="0.7"><title>{escape(band_title)}</title></rect>'
        )
    _y_grid(out, left, width - right, py, y_max)
    for y, label, color in hlines:
        out.append(
            f'<line x1="{left}" y1="{_n(py(y))}" x2="{width - right}" y2="{_n(py(y))}" '
            f'stroke="{color}" stroke-dasharray="4,3"/>'
        )
        out.append(_text(width - right - 4, py(y) - 4, label, "end", ' fill-opacity="0.8"'))
    for y, start, end, label, color in hspans:
        if end < t0 or start > t1:
            continue
        x0, x1 = px(start), px(end)
        out.append(
            f'<line class="span" x1="{_n(x0)}" y1="{_n(py(y))}" x2="{_n(x1)}" y2="{_n(py(y))}" '
            f'stroke="{color}" stroke-dasharray="4,3"><title>{escape(label)}</title></line>'
        )
        out.append(_text(x1 - 4, py(y) - 4, label, "end", ' fill-opacity="0.8"'))
    for line in lines:
        pts = " ".join(f"{_n(px(t))},{_n(py(v))}" for t, v in line.points if t0 <= t <= t1)
        if pts:
            dash = ' stroke-dasharray="6,3"' if line.dashed else ""
            out.append(
                f'<polyline points="{pts}" fill="none" stroke="{line.color}" '
                f'stroke-width="2"{dash}/>'
            )
    for m in markers:
        if not t0 <= m.t <= t1:
            continue
        x, y = px(m.t), py(m.y)
        tip = f"<title>{escape(m.title)}</title>"
        if m.shape == "diamond":
            shape = (
                f'<polygon points="{_n(x)},{_n(y - 6)} {_n(x + 6)},{_n(y)} {_n(x)},{_n(y + 6)} '
                f'{_n(x - 6)},{_n(y)}" fill="{m.color}" stroke="#fff">{tip}</polygon>'
            )
        elif m.shape == "triangle":
            shape = (
                f'<polygon points="{_n(x)},{_n(y - 6)} {_n(x + 6)},{_n(y + 5)} '
                f'{_n(x - 6)},{_n(y + 5)}" fill="{m.color}" stroke="#fff">{tip}</polygon>'
            )
        else:
            shape = (
                f'<circle cx="{_n(x)}" cy="{_n(y)}" r="4.5" fill="{m.color}" stroke="#fff">'
                f"{tip}</circle>"
            )
        out.append(shape)
    ticks = [(px(t0 + span * i // 6), t0 + span * i // 6) for i in range(7)]
    _x_dates(out, ticks, top + plot_h, plot_w, every=1)
    if x_label:
        out.append(x_axis_label(left + plot_w / 2, top + plot_h + 38, x_label))
    if y_label:
        out.append(y_axis_label(16, top + plot_h / 2, y_label))
    out.append("</svg>")
    return "".join(out)


def _y_grid(out: list[str], x0: float, x1: float, py: Callable[[float], float], top: float) -> None:
    for i in range(5):
        v = top * i / 4
        y = py(v)
        out.append(f'<line x1="{_n(x0)}" y1="{_n(y)}" x2="{_n(x1)}" y2="{_n(y)}" stroke="{GRID}"/>')
        label = f"{v:,.0f}" if top >= 4 else f"{v:.2f}"
        out.append(_text(x0 - 6, y + 4, label, "end"))


def _x_dates(
    out: list[str], ticks: Sequence[tuple[float, int]], y: float, plot_w: float, every: int = 0
) -> None:
    """Date labels under the x axis: about one per 90 px, or every ``every``-th tick."""
    if not ticks:
        return
    step = every or max(1, math.ceil(len(ticks) / max(plot_w / 90, 1)))
    for x, t in ticks[::step]:
        day = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")
        tick = f'x1="{_n(x)}" y1="{_n(y)}" x2="{_n(x)}" y2="{_n(y + 4)}"'
        out.append(f'<line {tick} stroke="{INK}"/>')
        out.append(_text(x, y + 18, day, "middle"))


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"
