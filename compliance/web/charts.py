"""Chart geometry for server-rendered SVG (templates/web/charts/*.html draws it).

Charts are computed here and drawn by templates so that they work without JavaScript
and without any network; each carries its data as a table, its text alternative.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.utils.formats import number_format
from django.utils.translation import gettext_lazy as _

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")

# Lines are told apart by their dash and their point's shape too, not by colour alone.
DASHES = ("", "8 4", "2 4", "12 4 3 4", "4 2", "1 3", "16 6")
MARKERS = ("circle", "square", "triangle", "diamond", "circle", "square", "triangle")

WIDTH = 640
HEIGHT = 260
# Room for axis text of 17 units: at the narrowest the SVG is drawn (the stylesheet's
# min-width, 460 px) that is 12.2 px on the screen. On the left, the y axis's title
# (its baseline at Y_TITLE_X) and beside it tick labels of up to ~70 units ("12.5 min",
# "2.1 Tage") that end 8 units short of the axis; on the right, half of the last
# x label ("12-07", ~45 units), which is centred on the axis's end.
LEFT, RIGHT, TOP, BOTTOM = 100, 30, 22, 50
Y_TITLE_X = 14
FONT_UNITS = 17
NARROWEST_PX = 460


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str  # what a pointer's tooltip says
    mark: str = ""  # the SVG path of the point's shape
    size: float = 0.0  # the shape's half-width


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    points: tuple[Point, ...]
    dash: str = ""  # stroke-dasharray; "" is a solid line
    marker: str = "circle"
    width: float = 2.5  # series drawn first are wider, so one hidden under another shows

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
    value: str = ""  # written above the bar, "0" included: zero is a value, not no data

    @property
    def center(self) -> float:
        return self.x + self.width / 2


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
    # What the chart shows now, in one sentence above it ("Purge lag stayed under 2
    # minutes on 29 of 30 days"); set by the page that knows what matters.
    summary: str = ""
    legend_series: tuple[Series, ...] = field(default=())

    y_title_x: int = Y_TITLE_X

    @property
    def plot_height(self) -> int:
        return self.bottom - self.top

    @property
    def x_label_y(self) -> int:
        return self.bottom + 22

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


def marker_path(shape: str, x: float, y: float, size: float) -> str:
    """The outline of a point: a circle, square, triangle or diamond of about `size`."""
    if shape == "square":
        h = size * 0.9
        return f"M{x - h:.1f},{y - h:.1f}h{2 * h:.1f}v{2 * h:.1f}h{-2 * h:.1f}z"
    if shape == "triangle":
        h = size * 1.2
        return f"M{x:.1f},{y - h:.1f}L{x + h:.1f},{y + h * 0.8:.1f}L{x - h:.1f},{y + h * 0.8:.1f}z"
    if shape == "diamond":
        h = size * 1.25
        return f"M{x:.1f},{y - h:.1f}L{x + h:.1f},{y:.1f}L{x:.1f},{y + h:.1f}L{x - h:.1f},{y:.1f}z"
    r = size
    arc = f"a{r:.1f},{r:.1f} 0 1,0"
    return f"M{x - r:.1f},{y:.1f}{arc} {2 * r:.1f},0{arc} {-2 * r:.1f},0"


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
        marker = MARKERS[n % len(MARKERS)]
        # Drawn in order, each on top of the ones before: the earlier ones are wider
        # and their points larger, so a line lying on another still shows at its edges.
        under = min(3, len(series) - 1 - n)
        size = 4.0 + 1.5 * under
        points = tuple(
            Point(
                xs[i],
                y := _y(v, top_value),
                f"{name}, {x_labels[i]}: {fmt(v)}",
                marker_path(marker, xs[i], y, size),
                size,
            )
            for i, v in enumerate(vs)
            if v is not None
        )
        drawn.append(
            Series(
                name,
                color,
                points,
                dash=DASHES[n % len(DASHES)],
                marker=marker,
                width=2.5 + 1.75 * under,
            )
        )
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
        legend_series=tuple(drawn) if legend or len(drawn) > 1 else (),
    )


# Up to this many bars carry their value above them; more would crowd the axis.
MAX_BAR_VALUES = 12


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
                fmt(value) if len(values) <= MAX_BAR_VALUES else "",
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
        # No categories or days at all: no data. Bars of 0 are data, drawn as 0.
        empty=not values,
    )


def _amount(value: float, unit: str) -> str:
    places = 0 if value >= 10 or value.is_integer() else 1
    return f"{number_format(value, places)} {unit}"


def duration(seconds: float) -> str:
    """Seconds as a person reads them: 45 s, 12 min, 3.5 h, 2.1 days."""
    if seconds < 60:
        return f"{number_format(seconds, 0)} s"
    if seconds < 3600:
        return _amount(seconds / 60, "min")
    if seconds < 48 * 3600:
        return _amount(seconds / 3600, "h")
    return _amount(seconds / 86400, str(_("days")))


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
    """1234 as "1,234" (German "1.234")."""
    return number_format(value, 0, force_grouping=True)
