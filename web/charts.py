"""Server-rendered SVG charts for the console: no chart library and no CDN, shown with <img>
(an SVG loaded as an image runs no script). Every label is escaped."""
from __future__ import annotations

from html import escape
from typing import Sequence

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 34, 34
FONT = 'font-family="Noto Sans CJK SC, PingFang SC, Microsoft YaHei, sans-serif"'


def _nice_max(value: float) -> int:
    """4 × the smallest of 1, 2, 5 × 10^k at or above value / 4: four whole grid steps."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if 4 * m * step >= value:
                return 4 * m * step
        step *= 10


Series = Sequence[tuple[str, Sequence[float], str]]


def stacked_bars(title: str, labels: Sequence[str], series: Series, lines: Series = ()) -> str:
    """One bar per label, stacked from `series` = [(name, values, colour)], and `lines` drawn
    over the bars (counts that are not part of the stack), with a legend."""
    n = max(1, len(labels))
    totals = [sum(s[1][i] for s in series) for i in range(len(labels))]
    top = _nice_max(max(totals + [v for _, values, _ in lines for v in values], default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / n
    bar = max(1.0, slot * 0.7)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" {FONT} font-size="11">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
           f'<text x="{LEFT}" y="16" font-size="13" font-weight="600" fill="#0b2453">{escape(title)}</text>']
    x = WIDTH - RIGHT
    for name, _, colour in reversed(list(series) + list(lines)):  # legend, right-aligned
        width = 18 + 12 * len(name)
        x -= width
        out.append(f'<rect x="{x}" y="7" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{x + 14}" y="16" fill="#374151">{escape(name)}</text>')
    for k in range(5):
        y = TOP + plot_h - plot_h * k / 4
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
                   f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#6b7280">{top * k // 4}</text>')
    every = max(1, round(n / 10))
    for i, label in enumerate(labels):
        x = LEFT + slot * i + (slot - bar) / 2
        y = TOP + plot_h
        for name, values, colour in series:
            h = plot_h * values[i] / top
            if h > 0:
                y -= h
                out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                           f'<title>{escape(label)} {escape(name)}：{values[i]:g}</title></rect>')
        if i % every == 0:
            out.append(f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                       f'fill="#6b7280">{escape(label)}</text>')
    for name, values, colour in lines:
        points = [(LEFT + slot * (i + 0.5), TOP + plot_h - plot_h * v / top) for i, v in enumerate(values)]
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                   + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) + '"/>')
        out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"><title>{escape(labels[i])} '
                f'{escape(name)}：{values[i]:g}</title></circle>' for i, (x, y) in enumerate(points) if values[i]]
    if not any(totals) and not any(v for _, values, _ in lines for v in values):
        out.append(f'<text x="{WIDTH / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" fill="#9ca3af">'
                   '所选日期内没有数据</text>')
    out.append("</svg>")
    return "".join(out)
