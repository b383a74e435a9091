"""Line charts drawn with Pillow (no plotting library): metric against labels used, one line per series."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

# Colour-blind-safe palette (Okabe & Ito); the baseline ("random") is drawn in black.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
BASELINE = "random"


@dataclass(frozen=True)
class Panel:
    """One plot: a title and, per series name, its (x, y) points; y None is a gap."""

    title: str
    series: dict[str, Sequence[tuple[float, float | None]]]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Return round tick values covering [low, high]."""
    span = max(high - low, 1e-9)
    raw = span / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    first = math.ceil(low / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((high - first) / step + 1e-9) + 1)]


def _dashed(draw: ImageDraw.ImageDraw, start: tuple[float, float], end: tuple[float, float], fill: str) -> None:
    (x0, y0), (x1, y1) = start, end
    length = math.hypot(x1 - x0, y1 - y0)
    for k in range(0, int(length), 12):
        a, b = k / length, min(k + 6, length) / length
        points = [(x0 + f * (x1 - x0), y0 + f * (y1 - y0)) for f in (a, b)]
        draw.line(points, fill=fill, width=2)


def colours(names: Sequence[str]) -> dict[str, str]:
    """Return a colour per series name: black for the random baseline, the palette for the rest."""
    others = iter(PALETTE)
    return {name: "#000000" if name.split(" = ")[0] == BASELINE else next(others, "#777777") for name in names}


def line_chart(
    path: Path,
    *,
    title: str,
    panels: Sequence[Panel],
    x_label: str,
    y_label: str,
    target: float | None = None,
    target_label: str = "",
    panel_size: tuple[int, int] = (640, 440),
) -> Path:
    """Draw the panels side by side with a shared y range and one legend; save as PNG and return the path."""
    width, height = panel_size
    margin_left, margin_right, margin_top, margin_bottom = 70, 20, 40, 60
    legend_height = 34
    header = 44
    image = Image.new("RGB", (width * len(panels), header + height + legend_height), "white")
    draw = ImageDraw.Draw(image)
    big, small = _font(18), _font(14)
    draw.text((12, 10), title, fill="black", font=big)

    names = list(dict.fromkeys(name for panel in panels for name in panel.series))
    palette = colours(names)
    xs = [x for panel in panels for points in panel.series.values() for x, _ in points]
    ys = [y for panel in panels for points in panel.series.values() for _, y in points if y is not None]
    if target is not None:
        ys.append(target)
    x_low, x_high = 0.0, float(max(xs, default=1.0))
    y_low, y_high = (min(ys), max(ys)) if ys else (0.0, 1.0)
    pad = max((y_high - y_low) * 0.08, 0.02)
    y_low, y_high = max(y_low - pad, 0.0), min(y_high + pad, 1.0) if y_high <= 1.0 else y_high + pad
    x_ticks, y_ticks = _ticks(x_low, x_high), _ticks(y_low, y_high)

    for index, panel in enumerate(panels):
        left = index * width + margin_left
        right = (index + 1) * width - margin_right
        top = header + margin_top
        bottom = header + height - margin_bottom

        def at(x: float, y: float, left: int = left, right: int = right, top: int = top, bottom: int = bottom):
            return (
                left + (x - x_low) / max(x_high - x_low, 1e-9) * (right - left),
                bottom - (y - y_low) / max(y_high - y_low, 1e-9) * (bottom - top),
            )

        draw.text((left, header + 10), panel.title, fill="black", font=small)
        for value in y_ticks:
            _, y = at(x_low, value)
            draw.line([(left, y), (right, y)], fill="#e6e6e6")
            text = f"{value:.2f}"
            draw.text((left - 8 - draw.textlength(text, font=small), y - 8), text, fill="#333333", font=small)
        for value in x_ticks:
            x, _ = at(value, y_low)
            draw.line([(x, top), (x, bottom)], fill="#f0f0f0")
            text = f"{value:g}"
            draw.text((x - draw.textlength(text, font=small) / 2, bottom + 6), text, fill="#333333", font=small)
        draw.rectangle([left, top, right, bottom], outline="#555555")
        draw.text(
            ((left + right) / 2 - draw.textlength(x_label, font=small) / 2, bottom + 28),
            x_label,
            fill="black",
            font=small,
        )
        label = Image.new("RGBA", (int(draw.textlength(y_label, font=small)) + 4, 20), (255, 255, 255, 0))
        ImageDraw.Draw(label).text((2, 0), y_label, fill="black", font=small)
        rotated = label.rotate(90, expand=True)
        image.paste(rotated, (index * width + 6, int((top + bottom) / 2 - rotated.height / 2)), rotated)
        if target is not None:
            _dashed(draw, at(x_low, target), at(x_high, target), "#888888")
        for name, points in panel.series.items():
            colour = palette[name]
            line_width = 3 if name.split(" = ")[0] == BASELINE else 2
            segment: list[tuple[float, float]] = []
            for x, y in [*points, (0.0, None)]:
                if y is None:
                    if len(segment) > 1:
                        draw.line(segment, fill=colour, width=line_width, joint="curve")
                    segment = []
                    continue
                segment.append(at(x, y))
            for x, y in points:
                if y is not None:
                    cx, cy = at(x, y)
                    draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=colour)
        if target is not None:  # over the lines, on white, so that it stays readable
            corner = (left + 6, at(x_low, target)[1] - 18)
            draw.rectangle(draw.textbbox(corner, target_label, font=small), fill="white")
            draw.text(corner, target_label, fill="#666666", font=small)

    x = 12
    legend_top = header + height + 6
    for name in names:
        draw.line([(x, legend_top + 9), (x + 26, legend_top + 9)], fill=palette[name], width=3)
        draw.text((x + 32, legend_top), name, fill="black", font=small)
        x += 32 + int(draw.textlength(name, font=small)) + 24
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
    return path
