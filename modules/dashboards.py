"""The one helper every CloudWatch dashboard is built with.

A dashboard is a list of `Graph`s; `dashboard_body` lays them out two per row and renders
CloudWatch's JSON, so no dashboard is a hand-written blob and each widget names its region
(CloudFront metrics only exist in us-east-1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

WIDTH, HEIGHT, COLUMNS = 12, 6, 2


@dataclass(frozen=True)
class Metric:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    stat: str = "Average"
    label: str | None = None

    def render(self) -> list:
        dimensions = [part for pair in self.dimensions for part in pair]
        options = {"stat": self.stat, **({"label": self.label} if self.label else {})}
        return [self.namespace, self.name, *dimensions, options]


@dataclass(frozen=True)
class Graph:
    title: str
    region: str
    metrics: tuple[Metric, ...]
    period: int = 60


@dataclass(frozen=True)
class Text:
    """A Markdown widget: for what CloudWatch cannot graph, such as a link to the X-Ray traces."""

    markdown: str


def _properties(widget: Graph | Text) -> tuple[str, dict]:
    if isinstance(widget, Text):
        return "text", {"markdown": widget.markdown}
    return "metric", {
        "title": widget.title,
        "region": widget.region,
        "view": "timeSeries",
        "period": widget.period,
        "metrics": [metric.render() for metric in widget.metrics],
    }


def dashboard_body(graphs: list[Graph | Text]) -> str:
    widgets = []
    for index, graph in enumerate(graphs):
        kind, properties = _properties(graph)
        widgets.append({
            "type": kind,
            "x": (index % COLUMNS) * WIDTH,
            "y": (index // COLUMNS) * HEIGHT,
            "width": WIDTH,
            "height": HEIGHT,
            "properties": properties,
        })
    return json.dumps({"widgets": widgets})
