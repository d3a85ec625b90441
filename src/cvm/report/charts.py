"""Small, dependency-free SVG charts: lines, grouped bars and heatmaps.

The charts are self-contained SVG text, so reports and the dashboard can embed them
offline (no CDN, no plotting library). They are deliberately plain: axes, ticks, a
legend, and values that can be read off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["grouped_bars", "heatmap", "line_chart"]

_COLOURS = ("#1f6feb", "#d1242f", "#2da44e", "#bf8700", "#8250df", "#57606a")
_W, _H = 680, 380
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 20, 40, 55


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Return round tick values covering [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0]
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    return [start + i * step for i in range(math.ceil((high - start) / step) + 1)]


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _frame(title: str, x_label: str, y_label: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{_W}" height="{_H}" fill="white"/>',
        f'<text x="{_W / 2}" y="22" text-anchor="middle" font-size="15" '
        f'font-weight="bold">{escape(title)}</text>',
        f'<text x="{_W / 2}" y="{_H - 12}" text-anchor="middle">{escape(x_label)}</text>',
        f'<text x="16" y="{_H / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {_H / 2})">{escape(y_label)}</text>',
    ]


def _axes(parts: list[str], y_ticks: list[float], y_of: object) -> None:
    assert callable(y_of)
    for tick in y_ticks:
        y = y_of(tick)
        parts.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>'
        )
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>')
    parts.append(
        f'<line x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{_H - _BOTTOM}" stroke="#57606a"/>'
    )
    parts.append(
        f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{_H - _BOTTOM}" y2="{_H - _BOTTOM}" '
        'stroke="#57606a"/>'
    )


def _legend(parts: list[str], names: Sequence[str]) -> None:
    for i, name in enumerate(names):
        x = _LEFT + 10 + i * 160
        parts.append(
            f'<rect x="{x}" y="{_TOP - 4}" width="12" height="4" '
            f'fill="{_COLOURS[i % len(_COLOURS)]}"/>'
        )
        parts.append(f'<text x="{x + 16}" y="{_TOP}">{escape(name)}</text>')


def line_chart(
    title: str,
    x: npt.ArrayLike,
    series: Mapping[str, npt.ArrayLike],
    *,
    x_label: str,
    y_label: str,
) -> str:
    """Render one or more lines over a shared x axis."""
    xs = np.asarray(x, dtype=np.float64)
    values = {k: np.asarray(v, dtype=np.float64) for k, v in series.items()}
    if any(len(v) != len(xs) for v in values.values()):
        raise ValueError("every series must have one value per x")
    finite = np.concatenate([v[np.isfinite(v)] for v in values.values()] + [np.zeros(1)])
    y_ticks = _ticks(float(min(0.0, finite.min())), float(finite.max()))
    x_ticks = _ticks(float(xs.min()), float(xs.max())) if len(xs) else [0.0]
    x0, x1 = x_ticks[0], x_ticks[-1]
    y0, y1 = y_ticks[0], y_ticks[-1]

    def px(v: float) -> float:
        return _LEFT + (v - x0) / (x1 - x0 or 1) * (_W - _LEFT - _RIGHT)

    def py(v: float) -> float:
        return _H - _BOTTOM - (v - y0) / (y1 - y0 or 1) * (_H - _TOP - _BOTTOM)

    parts = _frame(title, x_label, y_label)
    _axes(parts, y_ticks, py)
    for tick in x_ticks:
        parts.append(
            f'<text x="{px(tick):.1f}" y="{_H - _BOTTOM + 16}" '
            f'text-anchor="middle">{_fmt(tick)}</text>'
        )
    for i, (name, ys) in enumerate(values.items()):
        points = " ".join(
            f"{px(a):.1f},{py(b):.1f}" for a, b in zip(xs, ys, strict=True) if math.isfinite(b)
        )
        parts.append(
            f'<polyline fill="none" stroke="{_COLOURS[i % len(_COLOURS)]}" stroke-width="2" '
            f'points="{points}"><title>{escape(name)}</title></polyline>'
        )
    _legend(parts, list(values))
    parts.append("</svg>")
    return "\n".join(parts)


def grouped_bars(
    title: str,
    categories: Sequence[str],
    series: Mapping[str, npt.ArrayLike],
    *,
    x_label: str,
    y_label: str,
) -> str:
    """Render bars for each category, one bar per series side by side."""
    values = {k: np.asarray(v, dtype=np.float64) for k, v in series.items()}
    if any(len(v) != len(categories) for v in values.values()):
        raise ValueError("every series must have one value per category")
    top = max([float(np.nanmax(v)) for v in values.values() if len(v)] + [0.0])
    y_ticks = _ticks(0.0, top)
    y1 = y_ticks[-1]

    def py(v: float) -> float:
        return _H - _BOTTOM - v / (y1 or 1) * (_H - _TOP - _BOTTOM)

    parts = _frame(title, x_label, y_label)
    _axes(parts, y_ticks, py)
    slot = (_W - _LEFT - _RIGHT) / max(1, len(categories))
    width = slot * 0.8 / max(1, len(values))
    for c, category in enumerate(categories):
        left = _LEFT + c * slot + slot * 0.1
        for i, (name, ys) in enumerate(values.items()):
            y = py(float(ys[c]))
            parts.append(
                f'<rect x="{left + i * width:.1f}" y="{y:.1f}" width="{width:.1f}" '
                f'height="{_H - _BOTTOM - y:.1f}" fill="{_COLOURS[i % len(_COLOURS)]}">'
                f"<title>{escape(name)} {escape(str(category))}: {_fmt(float(ys[c]))}</title>"
                "</rect>"
            )
        parts.append(
            f'<text x="{left + slot * 0.4:.1f}" y="{_H - _BOTTOM + 16}" '
            f'text-anchor="middle">{escape(str(category))}</text>'
        )
    _legend(parts, list(values))
    parts.append("</svg>")
    return "\n".join(parts)


def heatmap(title: str, frame: pd.DataFrame, *, x_label: str, y_label: str) -> str:
    """Render a matrix (rows × columns of a DataFrame) as coloured cells, low to high."""
    grid = frame.to_numpy(dtype=np.float64)
    finite = grid[np.isfinite(grid)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    rows, cols = grid.shape
    cell_w = (_W - _LEFT - _RIGHT) / max(1, cols)
    cell_h = (_H - _TOP - _BOTTOM) / max(1, rows)
    parts = _frame(title, x_label, y_label)
    for r in range(rows):
        for c in range(cols):
            value = grid[r, c]
            if not math.isfinite(value):
                continue
            share = (value - low) / (high - low) if high > low else 0.5
            shade = int(245 - 190 * share)
            y = _H - _BOTTOM - (r + 1) * cell_h
            parts.append(
                f'<rect x="{_LEFT + c * cell_w:.1f}" y="{y:.1f}" width="{cell_w:.1f}" '
                f'height="{cell_h:.1f}" fill="rgb({shade},{shade + 5 if shade < 250 else 250},'
                f'255)"><title>{escape(str(frame.index[r]))}, {escape(str(frame.columns[c]))}: '
                f"{_fmt(value)}</title></rect>"
            )
    step_r = max(1, rows // 10)
    for r in range(0, rows, step_r):
        y = _H - _BOTTOM - (r + 0.5) * cell_h
        parts.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(str(frame.index[r]))}</text>"
        )
    step_c = max(1, cols // 8)
    for c in range(0, cols, step_c):
        label = frame.columns[c]
        text = _fmt(float(label)) if isinstance(label, int | float) else str(label)
        parts.append(
            f'<text x="{_LEFT + (c + 0.5) * cell_w:.1f}" y="{_H - _BOTTOM + 16}" '
            f'text-anchor="middle">{escape(text)}</text>'
        )
    parts.append(
        f'<text x="{_W - _RIGHT}" y="{_TOP - 6}" text-anchor="end">'
        f"light {_fmt(low)} … dark {_fmt(high)}</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts)
