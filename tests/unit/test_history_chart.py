"""The ``?mirrorstats`` download history chart (:mod:`mirrorbits.web.history_chart`), pure."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirrorbits.web.history_chart import (
    OTHERS_COLOUR,
    PALETTE,
    History,
    Series,
    group_series,
    nice_step,
    render_svg,
    short_count,
)

SVG = "{http://www.w3.org/2000/svg}"
LAST = date(2026, 11, 30)
DAYS = tuple(LAST - timedelta(days=back) for back in range(29, -1, -1))


def quiet(**days: int) -> list[dict[int, int]]:
    return [{} for _ in DAYS]


def parse(history: History) -> ET.Element:
    return ET.fromstring(render_svg(history))


def test_the_busiest_mirrors_first_then_the_others_summed() -> None:
    names = {mid: f"m{mid}" for mid in range(1, 10)}
    per_day = quiet()
    for mid in range(1, 10):
        per_day[0][mid] = mid * 10  # m9 is the busiest
        per_day[29][mid] = 1
    per_day[5][3] = 5
    history = group_series(DAYS, names | {10: "idle"}, per_day, top=3)
    assert [layer.name for layer in history.series] == ["m9", "m8", "m7", "others, 6 mirrors"]
    assert [layer.colour for layer in history.series] == [*PALETTE[:3], OTHERS_COLOUR]
    others = history.series[-1]
    assert others.requests[0] == sum(mid * 10 for mid in range(1, 7))
    assert others.requests[5] == 5 and others.requests[29] == 6
    assert history.day_total(0) == sum(mid * 10 for mid in range(1, 10))


def test_ties_by_name_and_idle_mirrors_left_out() -> None:
    per_day = quiet()
    per_day[3] = {1: 4, 2: 4, 3: 0}
    history = group_series(DAYS, {1: "b", 2: "a", 3: "zero"}, per_day)
    assert [layer.name for layer in history.series] == ["a", "b"]
    assert group_series(DAYS, {1: "b"}, quiet()).series == ()


def test_days_and_counters_must_match() -> None:
    with pytest.raises(ValueError, match="29 days of counters for 30 days"):
        group_series(DAYS, {}, quiet()[1:])


@pytest.mark.parametrize(("peak", "step"), [
    (0, 1), (3, 1), (4, 1), (5, 2), (9, 5), (40, 10), (41, 20), (999, 500), (1000, 500),
    (123_456, 50_000)])
def test_round_steps(peak: int, step: int) -> None:
    assert nice_step(peak) == step


@pytest.mark.parametrize(("value", "text"), [
    (0, "0"), (9500, "9500"), (15_000, "15k"), (2_500_000, "2.5M")])
def test_short_counts(value: int, text: str) -> None:
    assert short_count(value) == text


def _days(root: ET.Element) -> list[ET.Element]:
    group = root.find(f"{SVG}g[@class='bars']")
    assert group is not None
    return list(group)


def test_stacked_bars_are_proportional_and_titled() -> None:
    history = History(DAYS, (
        Series("alpha", tuple(range(30)), PALETTE[0]),
        Series("beta", tuple(2 * i for i in range(30)), PALETTE[1]),
    ))
    root = parse(history)
    days = _days(root)
    assert len(days) == 29  # day 0 has no downloads: nothing drawn
    assert len({g.find(f"{SVG}rect").attrib["x"] for g in days}) == 29  # type: ignore[union-attr]
    last = days[-1]
    rects = last.findall(f"{SVG}rect")
    # The peak (87 on the last day) rounds up to 100 on the 200 px high plot.
    assert [float(r.attrib["height"]) for r in rects] == [58.0, 116.0]
    assert float(rects[0].attrib["y"]) == pytest.approx(float(rects[1].attrib["y"]) + 116.0)
    assert [r.attrib["fill"] for r in rects] == list(PALETTE[:2])
    assert last.findtext(f"{SVG}title") == "2026-11-30: 87 downloads\nalpha: 29\nbeta: 58"
    assert days[0].findtext(f"{SVG}title") == "2026-11-02: 3 downloads\nalpha: 1\nbeta: 2"
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert labels[:3] == ["0", "50", "100"]
    dates = [label for label in labels if label and label.startswith("Nov")]
    assert dates == ["Nov 2", "Nov 9", "Nov 16", "Nov 23", "Nov 30"]


def test_accessible_title_and_summary() -> None:
    root = parse(History(DAYS, (Series("alpha", (1,) * 30, PALETTE[0]),)))
    assert root.attrib["role"] == "img"
    assert root.attrib["aria-labelledby"] == "history-title history-desc"
    assert root.findtext(f"{SVG}title") == (
        "Downloads per day and mirror, 2026-11-01 to 2026-11-30 (UTC)")
    assert root.findtext(f"{SVG}desc") == "alpha: 30 downloads"
    legend = root.find(f"{SVG}g[@class='legend']")
    assert legend is not None
    assert [t.text for t in legend.iter(f"{SVG}text")] == ["alpha (30)"]


def test_nothing_downloaded_says_so() -> None:
    root = parse(History(DAYS, ()))
    assert _days(root) == []
    assert "No downloads in these 30 days" in [t.text for t in root.iter(f"{SVG}text")]


HOSTILE = ['<script>alert("x")</script>', "a&b", "</svg><img src=x onerror=y>", "\x00\x01bell\x07",
           "\udcff", "'quoted'", "]]>"]


def test_hostile_names_are_text_only() -> None:
    per_day = quiet()
    for mid, _ in enumerate(HOSTILE):
        per_day[-1][mid] = 100 - mid
    history = group_series(DAYS, dict(enumerate(HOSTILE)), per_day, top=len(HOSTILE))
    text = render_svg(history)
    root = ET.fromstring(text)  # well-formed whatever the names
    assert not re.search(r"<(?!/?(svg|title|desc|g|line|text|rect)\b)", text)
    attributes = {name for element in root.iter() for name in element.attrib}
    assert not [name for name in attributes if name.startswith("on") or "href" in name]
    assert "url(" not in text
    titles = [t.text or "" for t in root.iter(f"{SVG}title")]
    day = next(title for title in titles if title.startswith(f"{LAST}: "))
    assert day.split("\n")[1:] == [
        '<script>alert("x")</script>: 100', "a&b: 99", "</svg><img src=x onerror=y>: 98",
        "\ufffd\ufffdbell\ufffd: 97", "\ufffd: 96", "'quoted': 95", "]]>: 94"]


def test_long_names_are_shortened_in_the_legend_only() -> None:
    name = "mirror." + "x" * 60 + ".example"
    root = parse(History(DAYS, (Series(name, (1,) * 30, PALETTE[0]),)))
    legend = root.find(f"{SVG}g[@class='legend']")
    assert legend is not None
    label = next(legend.iter(f"{SVG}text")).text or ""
    assert label.endswith("… (30)") and len(label) < 40
    assert legend.findtext(f"{SVG}g/{SVG}title") == f"{name}: 30 downloads"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=9))
def test_any_name_gives_well_formed_svg(names: list[str]) -> None:
    per_day = quiet()
    for mid, _ in enumerate(names):
        per_day[mid % 30][mid] = mid + 1
    text = render_svg(group_series(DAYS, dict(enumerate(names)), per_day))
    root = ET.fromstring(text)
    assert {element.tag for element in root.iter()} <= {
        f"{SVG}{tag}" for tag in ("svg", "title", "desc", "g", "line", "text", "rect")}
