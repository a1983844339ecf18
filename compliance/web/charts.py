"""Chart geometry for server-rendered SVG (templates/web/charts/*.html draws it).

Charts are computed here and drawn by templates so that they work without JavaScript
and without any network; each carries its data as a table, its text alternative.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")

WIDTH = 640
HEIGHT = 240
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 44


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str  # what a pointer's tooltip says


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    points: tuple[Point, ...]

    @property
    def path(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    label: str


@dataclass(frozen=True)
class Chart:
    """Everything a template needs: the frame, the axes, the marks, and the table."""

    slug: str
    title: str
    description: str
    x_axis: str
    y_axis: str
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    series: tuple[Series, ...] = ()
    bars: tuple[Bar, ...] = ()
    table_head: tuple[str, ...] = ()
    table_rows: tuple[tuple[str, ...], ...] = ()
    empty: bool = False
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM
    legend: tuple[tuple[str, str], ...] = field(default=())

    @property
    def plot_height(self) -> int:
        return self.bottom - self.top

    @property
    def x_label_y(self) -> int:
        return self.bottom + 18

    @property
    def axis_title_y(self) -> int:
        return self.height - 4

    @property
    def middle_y(self) -> float:
        return (self.top + self.bottom) / 2

    @property
    def center_x(self) -> float:
        return (self.left + self.right) / 2


def nice_ceiling(value: float, ticks: int = 4, *, whole: bool = False) -> tuple[float, float]:
    """A round top for the y axis at or above `value`, and the step between ticks;
    `whole`: the steps are whole numbers (counts have no quarter artefacts)."""
    if whole:
        value = max(value, float(ticks))
    if value <= 0:
        return 1.0, 0.25
    raw = value / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 3, 5, 10):
        step = multiple * magnitude
        if whole and step != int(step):
            continue
        if step * ticks >= value:
            return step * ticks, step
    return 10 * magnitude * ticks, 10 * magnitude  # pragma: no cover - the loop ends at 10


BOTTOM_Y = HEIGHT - BOTTOM


def _y(value: float, top_value: float) -> float:
    return BOTTOM_Y - (value / top_value) * (BOTTOM_Y - TOP)


def _x_positions(count: int) -> list[float]:
    right = WIDTH - RIGHT
    if count == 1:
        return [(LEFT + right) / 2]
    step = (right - LEFT) / (count - 1)
    return [LEFT + i * step for i in range(count)]


def _thin(labels: Sequence[str], positions: Sequence[float], keep: int = 6) -> tuple[Tick, ...]:
    if not labels:
        return ()
    stride = max(1, math.ceil(len(labels) / keep))
    chosen = list(range(0, len(labels), stride))
    if chosen[-1] != len(labels) - 1 and len(labels) - 1 - chosen[-1] >= stride / 2:
        chosen.append(len(labels) - 1)
    return tuple(Tick(positions[i], labels[i]) for i in chosen)


def _y_ticks(top_value: float, step: float, fmt: Callable[[float], str]) -> tuple[Tick, ...]:
    count = round(top_value / step)
    return tuple(Tick(_y(i * step, top_value), fmt(i * step)) for i in range(count + 1))


def line_chart(
    *,
    slug: str,
    title: str,
    description: str,
    x_axis: str,
    y_axis: str,
    x_labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    y_max: float | None = None,
    y_floor: float = 0.0,
    legend: bool = False,
    scale: Callable[[float], tuple[float, float]] = nice_ceiling,
) -> Chart:
    """Lines over categorical x positions (days). A None value breaks no line: the
    point is left out."""
    values = [v for _, vs in series for v in vs if v is not None]
    top_value, step = (y_max, y_max / 4) if y_max else scale(max([y_floor, *values]))
    xs = _x_positions(len(x_labels))
    drawn = []
    for n, (name, vs) in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        points = tuple(
            Point(xs[i], _y(v, top_value), f"{name}, {x_labels[i]}: {fmt(v)}")
            for i, v in enumerate(vs)
            if v is not None
        )
        drawn.append(Series(name, color, points))
    rows = tuple(
        (label, *("\u2013" if (v := vs[i]) is None else fmt(v) for _, vs in series))
        for i, label in enumerate(x_labels)
    )
    return Chart(
        slug=slug,
        title=title,
        description=description,
        x_axis=x_axis,
        y_axis=y_axis,
        x_ticks=_thin(x_labels, xs),
        y_ticks=_y_ticks(top_value, step, fmt),
        series=tuple(drawn),
        table_head=(x_axis, *(name for name, _ in series)),
        table_rows=rows,
        empty=not values,
        legend=tuple((s.name, s.color) for s in drawn) if legend or len(drawn) > 1 else (),
    )


def bar_chart(
    *,
    slug: str,
    title: str,
    description: str,
    x_axis: str,
    y_axis: str,
    x_labels: Sequence[str],
    values: Sequence[float],
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    color: str = PALETTE[0],
    extra_columns: Sequence[tuple[str, Sequence[str]]] = (),
) -> Chart:
    top_value, step = nice_ceiling(max(values, default=0.0), whole=True)
    right = WIDTH - RIGHT
    slot = (right - LEFT) / max(1, len(values))
    width = max(2.0, min(48.0, slot * 0.7))
    bars = []
    centers = []
    for i, value in enumerate(values):
        center = LEFT + slot * (i + 0.5)
        centers.append(center)
        y = _y(value, top_value)
        bars.append(
            Bar(
                center - width / 2,
                y,
                width,
                BOTTOM_Y - y,
                color,
                f"{x_labels[i]}: {fmt(value)}",
            )
        )
    rows = tuple(
        (label, fmt(values[i]), *(column[i] for _, column in extra_columns))
        for i, label in enumerate(x_labels)
    )
    return Chart(
        slug=slug,
        title=title,
        description=description,
        x_axis=x_axis,
        y_axis=y_axis,
        x_ticks=_thin(x_labels, centers, keep=8),
        y_ticks=_y_ticks(top_value, step, fmt),
        bars=tuple(bars),
        table_head=(x_axis, y_axis, *(name for name, _ in extra_columns)),
        table_rows=rows,
        empty=not any(values),
    )


def _amount(value: float, unit: str) -> str:
    return f"{value:.0f} {unit}" if value >= 10 or value.is_integer() else f"{value:.1f} {unit}"


def duration(seconds: float) -> str:
    """Seconds as a person reads them: 45 s, 12 min, 3.5 h, 2.1 days."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return _amount(seconds / 60, "min")
    if seconds < 48 * 3600:
        return _amount(seconds / 3600, "h")
    return _amount(seconds / 86400, "days")


# Steps a time axis reads well in: seconds, minutes, hours, days.
_TIME_STEPS = (
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
    172800,
    604800,
)


def time_ceiling(value: float, ticks: int = 4) -> tuple[float, float]:
    """Like `nice_ceiling`, for seconds: the ticks fall on whole minutes, hours, days."""
    for step in _TIME_STEPS:
        if step * ticks >= value:
            return float(step * ticks), float(step)
    return nice_ceiling(value, ticks)


def percent(value: float) -> str:
    return f"{value:.0f}%"


def count(value: float) -> str:
    return f"{value:,.0f}"
