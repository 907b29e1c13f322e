"""A tiny SVG writer for benchmark plots (no plotting library is a dependency)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape


def strip_plot(title: str, unit: str, series: Sequence[tuple[str, Sequence[float]]],
               target: float | None = None, width: int = 720) -> str:
    """One horizontal strip per series: every sample as a dot, the median as a bar."""
    row, left, right, top = 34, 230, 40, 46
    height = top + row * len(series) + 40
    high = max([max(values) for _label, values in series if values] + [target or 0]) * 1.1
    scale = (width - left - right) / high if high else 1.0

    def x(value: float) -> float:
        return left + value * scale

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>']
    for i, (label, values) in enumerate(series):
        y = top + i * row + row / 2
        out.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{escape(label)}</text>')
        out.append(f'<line x1="{left}" y1="{y}" x2="{width - right}" y2="{y}" stroke="#eee"/>')
        for value in values:
            out.append(f'<circle cx="{x(value):.1f}" cy="{y}" r="2.5" fill="#4477aa" '
                       f'fill-opacity="0.5"/>')
        if values:
            median = sorted(values)[len(values) // 2]
            out.append(f'<line x1="{x(median):.1f}" y1="{y - 11}" x2="{x(median):.1f}" '
                       f'y2="{y + 11}" stroke="#cc3311" stroke-width="3"/>')
            out.append(f'<text x="{x(median) + 6:.1f}" y="{y - 6}" fill="#cc3311">'
                       f'{median:.1f}</text>')
    axis_y = top + row * len(series) + 8
    out.append(f'<line x1="{left}" y1="{axis_y}" x2="{width - right}" y2="{axis_y}" stroke="#333"/>')
    step = _step(high)
    tick = 0.0
    while tick <= high:
        out.append(f'<line x1="{x(tick):.1f}" y1="{axis_y}" x2="{x(tick):.1f}" y2="{axis_y + 5}" '
                   f'stroke="#333"/><text x="{x(tick):.1f}" y="{axis_y + 18}" '
                   f'text-anchor="middle">{tick:g}</text>')
        tick += step
    out.append(f'<text x="{width - right}" y="{axis_y + 32}" text-anchor="end">{escape(unit)}</text>')
    if target is not None:
        out.append(f'<line x1="{x(target):.1f}" y1="{top - 6}" x2="{x(target):.1f}" y2="{axis_y}" '
                   f'stroke="#228833" stroke-dasharray="4 3"/><text x="{x(target) + 4:.1f}" '
                   f'y="{top - 8}" fill="#228833">target {target:g}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def scatter_plot(title: str, x_label: str, y_label: str, points: Sequence[tuple[float, float]],
                 width: int = 720, height: int = 320) -> str:
    """Every ``(x, y)`` point as a dot, with both axes from zero."""
    left, right, top, bottom = 60, 30, 40, 50
    high_x = max([x for x, _ in points] + [1]) * 1.02
    high_y = max([y for _, y in points] + [1]) * 1.1

    def sx(value: float) -> float:
        return left + value * (width - left - right) / high_x

    def sy(value: float) -> float:
        return height - bottom - value * (height - top - bottom) / high_y

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
           f'<line x1="{left}" y1="{sy(0)}" x2="{width - right}" y2="{sy(0)}" stroke="#333"/>',
           f'<line x1="{left}" y1="{sy(0)}" x2="{left}" y2="{top}" stroke="#333"/>']
    for x, y in points:
        out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="1.8" fill="#4477aa" '
                   f'fill-opacity="0.6"/>')
    tick, step = 0.0, _step(high_x)
    while tick <= high_x:
        out.append(f'<text x="{sx(tick):.1f}" y="{sy(0) + 16}" text-anchor="middle">{tick:g}</text>')
        tick += step
    tick, step = 0.0, _step(high_y)
    while tick <= high_y:
        out.append(f'<line x1="{left}" y1="{sy(tick):.1f}" x2="{width - right}" y2="{sy(tick):.1f}" '
                   f'stroke="#eee"/><text x="{left - 6}" y="{sy(tick) + 4:.1f}" '
                   f'text-anchor="end">{tick:g}</text>')
        tick += step
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" '
               f'text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text x="14" y="{(top + height - bottom) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 14 {(top + height - bottom) / 2})">{escape(y_label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _step(high: float) -> float:
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000, 2000, 5000):
        if high / step <= 10:
            return float(step)
    return high / 10
