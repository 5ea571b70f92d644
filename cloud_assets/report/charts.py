"""Altair charts of the report, one function per chart; each returns a Vega-Lite spec (dict) with
its data inlined. No interactive parameters: their auto-generated names would differ between builds."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

WIDTH = 420


def _spec(chart: alt.TopLevelMixin) -> dict:
    return chart.configure_view(stroke=None).to_dict()


def bars(df: pd.DataFrame, x: str, y: str, title: str, x_title: str, y_title: str, color: str | None = None,
         tooltip=None, sort=None) -> dict:
    enc = dict(x=alt.X(f"{x}:N", title=x_title, sort=sort), y=alt.Y(f"{y}:Q", title=y_title),
               tooltip=tooltip or [alt.Tooltip(f"{x}:N", title=x_title), alt.Tooltip(f"{y}:Q", title=y_title)])
    if color:
        enc["color"] = alt.Color(f"{color}:N", title=color.replace("_", " "))
    return _spec(alt.Chart(df, title=title, width=WIDTH, height=220).mark_bar().encode(**enc))


def grouped_bars(df: pd.DataFrame, x: str, y: str, group: str, title: str, x_title: str, y_title: str,
                 sort=None) -> dict:
    chart = alt.Chart(df, title=title, width=WIDTH, height=220).mark_bar().encode(
        x=alt.X(f"{x}:N", title=x_title, sort=sort), xOffset=alt.XOffset(f"{group}:N", sort=sort),
        y=alt.Y(f"{y}:Q", title=y_title), color=alt.Color(f"{group}:N", title=group.replace("_", " "), sort=sort),
        tooltip=[alt.Tooltip(f"{x}:N", title=x_title), alt.Tooltip(f"{group}:N"), alt.Tooltip(f"{y}:Q", title=y_title)])
    return _spec(chart)


def history(df: pd.DataFrame, value: str, title: str, y_title: str) -> dict:
    """One line per class across model versions (`version` ordered by first materialization)."""
    chart = alt.Chart(df, title=title, width=WIDTH, height=220).mark_line(point=True).encode(
        x=alt.X("version:N", title="model version (SHA-256, first seen order)", sort=None),
        y=alt.Y(f"{value}:Q", title=y_title), color=alt.Color("class:N", title="class"),
        tooltip=["version:N", "class:N", alt.Tooltip(f"{value}:Q", title=y_title, format=".3f"), "seen:N"])
    return _spec(chart)


def pr_curve(precision: np.ndarray, recall: np.ndarray, marks: pd.DataFrame, class_name: str) -> dict:
    """The class's PR curve, with the thresholds of `marks` (`level`, `precision`, `recall`, `threshold`)."""
    step = max(1, len(precision) // 600)  # thin very long curves; the endpoints stay
    idx = np.unique(np.r_[np.arange(0, len(precision), step), len(precision) - 1])
    curve = pd.DataFrame({"recall": recall[idx], "precision": precision[idx]})
    line = alt.Chart(curve).mark_line().encode(
        x=alt.X("recall:Q", title="recall", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("precision:Q", title="precision", scale=alt.Scale(domain=[0, 1])),
        tooltip=[alt.Tooltip("recall:Q", format=".3f"), alt.Tooltip("precision:Q", format=".3f")])
    points = alt.Chart(marks).mark_point(size=90, filled=True, color="firebrick").encode(
        x="recall:Q", y="precision:Q",
        tooltip=[alt.Tooltip("level:N", title="precision level"), alt.Tooltip("threshold:Q", format=".4f"),
                 alt.Tooltip("precision:Q", format=".3f"), alt.Tooltip("recall:Q", format=".3f")])
    labels = points.mark_text(dx=8, dy=-8, align="left", color="firebrick").encode(text="label:N")
    return _spec(alt.layer(line, points, labels, title=f"{class_name}: precision-recall curve (validation)")
                 .properties(width=WIDTH, height=300))


def confusion(matrix: pd.DataFrame, class_name: str, value: str, title: str, fmt: str) -> dict:
    """2x2 heatmap; `matrix` has `true`, `predicted`, `value`."""
    base = alt.Chart(matrix, title=title, width=220, height=220).encode(
        x=alt.X("predicted:N", title="predicted label", sort=["the rest", class_name]),
        y=alt.Y("true:N", title="true label", sort=["the rest", class_name]))
    cells = base.mark_rect().encode(color=alt.Color(f"{value}:Q", scale=alt.Scale(scheme="blues"), legend=None),
                                    tooltip=["true:N", "predicted:N", alt.Tooltip(f"{value}:Q", format=fmt)])
    text = base.mark_text(fontSize=16).encode(text=alt.Text(f"{value}:Q", format=fmt),
                                              color=alt.condition(f"datum.{value} > 0.5 * {matrix[value].max() or 1}",
                                                                  alt.value("white"), alt.value("black")))
    return _spec(alt.layer(cells, text))


def pie(df: pd.DataFrame, category: str, value: str, title: str, sort=None) -> dict:
    """A pie of `value` per `category`, each slice labelled with its percentage (the notebook's pie)."""
    df = df[df[value] > 0].copy()
    df["share"] = df[value] / max(df[value].sum(), 1)
    df["label"] = [f"{c} {s:.1%}" for c, s in zip(df[category], df["share"])]
    order = {c: k for k, c in enumerate(sort or df[category])}
    df["order"] = [order.get(c, len(order)) for c in df[category]]
    base = alt.Chart(df, title=title, width=260, height=260).encode(
        theta=alt.Theta(f"{value}:Q", stack=True), order=alt.Order("order:Q"),
        color=alt.Color(f"{category}:N", sort=sort, legend=None),
        tooltip=[alt.Tooltip(f"{category}:N"), alt.Tooltip(f"{value}:Q"), alt.Tooltip("share:Q", format=".1%")])
    return _spec(alt.layer(base.mark_arc(outerRadius=100), base.mark_text(radius=128, fontSize=12).encode(text="label:N")))


def threshold_map(df: pd.DataFrame, class_name: str, marks) -> dict:
    """The class's threshold maps: probability against precision level and against recall level
    (`df`: `kind`, `level`, `probability`), with vertical rules at the levels `marks`."""
    lines = alt.Chart(df.dropna()).mark_line(point=alt.OverlayMarkDef(size=12)).encode(
        x=alt.X("level:Q", title="precision or recall level (%)", scale=alt.Scale(domain=[10, 100])),
        y=alt.Y("probability:Q", title="probability threshold", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("kind:N", title="level of"),
        tooltip=["kind:N", "level:Q", alt.Tooltip("probability:Q", format=".4f")])
    rules = alt.Chart(pd.DataFrame({"level": list(marks)})).mark_rule(strokeDash=[3, 3], color="gray").encode(x="level:Q")
    return _spec(alt.layer(lines, rules, title=f"{class_name}: level -> probability threshold")
                 .properties(width=WIDTH, height=240))
