"""An inline SVG bar chart: drawn as text, so the report stays one file with no scripts."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

_LABEL_CHARS = 38


def _clip(label: str) -> str:
    # Sources are long paths; their ends tell them apart.
    return label if len(label) <= _LABEL_CHARS else "\u2026" + label[-(_LABEL_CHARS - 1):]


def bar_chart(bars: list[tuple[str, int]], *, title: str, fmt: Callable[[int], str], width: int = 760) -> str:
    """Horizontal bars, one per (label, value); labels escaped, full label in a tooltip."""
    row, top, label_w, value_w = 26, 30, 300, 110
    plot_w = width - label_w - value_w
    height = top + row * max(len(bars), 1) + 10
    biggest = max((v for _, v in bars), default=0)
    out = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">',
           f'<text x="0" y="18" font-size="14" font-weight="bold" fill="#222">{escape(title)}</text>']
    if not bars:
        out.append(f'<text x="0" y="{top + 16}" font-size="13" fill="#555">no sources</text>')
    for i, (label, value) in enumerate(bars):
        y = top + i * row
        w = 0 if biggest == 0 else max(round(plot_w * value / biggest), 1 if value else 0)
        out.append(f'<g><title>{escape(label)}: {escape(fmt(value))}</title>'
                   f'<text x="{label_w - 8}" y="{y + 16}" font-size="12" text-anchor="end" fill="#222">'
                   f'{escape(_clip(label))}</text>'
                   f'<rect x="{label_w}" y="{y + 4}" width="{w}" height="{row - 8}" fill="#b5522b"/>'
                   f'<text x="{label_w + w + 6}" y="{y + 16}" font-size="12" fill="#222">{escape(fmt(value))}</text></g>')
    out.append("</svg>")
    return "".join(out)
