"""Small inline SVG charts (no matplotlib, no script): bars and lines, with their numbers in
<title> elements for a hover."""

from __future__ import annotations

from html import escape

WIDTH = 640
HEIGHT = 220
PAD = 36
COLOURS = ("#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477")


def _frame(name: str, title: str, body: str) -> str:
    return (
        f'<svg data-chart="{escape(name)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img">'
        f"<title>{escape(title)}</title>"
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - 8}" y2="{HEIGHT - PAD}" '
        f'stroke="#888"/>{body}</svg>'
    )


def _empty(name: str, title: str) -> str:
    text = f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>'
    return _frame(name, title, text)


def bars(name: str, title: str, labels: list[str], values: list[float]) -> str:
    """A vertical bar per label; an empty chart says "no data"."""
    if not values or max(values, default=0) <= 0:
        return _empty(name, title)
    top = max(values)
    slot = (WIDTH - PAD - 8) / len(values)
    span = HEIGHT - 2 * PAD
    parts = [f'<text x="2" y="{PAD - 8}" font-size="10">{escape(_short(top))}</text>']
    for n, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = span * value / top
        x = PAD + n * slot + slot * 0.1
        y = HEIGHT - PAD - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" height="{h:.1f}" '
            f'fill="{COLOURS[0]}"><title>{escape(label)}: {escape(_short(value))}</title></rect>'
        )
        if len(values) <= 24:
            parts.append(
                f'<text x="{x + slot * 0.4:.1f}" y="{HEIGHT - PAD + 12}" font-size="9" '
                f'text-anchor="middle">{escape(_fit(label, slot))}</text>'
            )
    return _frame(name, title, "".join(parts))


def lines(name: str, title: str, xs: list[str], series: dict[str, list[float | None]]) -> str:
    """A polyline per series over the same x labels (None: a gap); circles on the points."""
    points = [v for values in series.values() for v in values if v is not None]
    if not xs or not points:
        return _empty(name, title)
    top = max(max(points), 1e-12)
    step = (WIDTH - PAD - 8) / max(len(xs) - 1, 1)
    span = HEIGHT - 2 * PAD
    parts = [f'<text x="2" y="{PAD - 8}" font-size="10">{escape(_short(top))}</text>']
    for n, x_label in enumerate(xs):
        if len(xs) <= 14 or n % max(len(xs) // 7, 1) == 0:
            parts.append(
                f'<text x="{PAD + n * step:.1f}" y="{HEIGHT - PAD + 12}" font-size="9" '
                f'text-anchor="middle">{escape(x_label[5:] if len(x_label) == 10 else x_label)}'
                "</text>"
            )
    for k, (label, values) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        coords = [
            (PAD + n * step, HEIGHT - PAD - span * v / top)
            for n, v in enumerate(values)
            if v is not None
        ]
        if len(coords) > 1:
            d = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for (x, y), v in zip(coords, [v for v in values if v is not None], strict=True):
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                f"<title>{escape(label)}: {escape(_short(v))}</title></circle>"
            )
        parts.append(
            f'<text x="{WIDTH - 8}" y="{14 + 12 * k}" font-size="10" text-anchor="end" '
            f'fill="{colour}">{escape(label)}</text>'
        )
    return _frame(name, title, "".join(parts))


def _fit(label: str, slot: float) -> str:
    """The label as it fits under its bar (about 5 px a character at font size 9), cut with an
    ellipsis when it does not: the whole label is in the bar's hover title."""
    room = max(3, int(slot * 0.95 / 5))
    return label if len(label) <= room else label[: room - 1] + "\u2026"


def _short(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
