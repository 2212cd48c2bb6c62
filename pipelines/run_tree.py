"""An MLflow run and its nested runs as a tree (`fitrec pipeline show RUN_ID`), from the `mlflow.parentRunId`
tags MLflow itself uses for nesting."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.tracking import MlflowClient

REUSED_TAG = "fitrec.reused_from"
# What a run decided, shown beside it: the pipeline's and the gate's decision, the data check's verdict.
OUTCOME_TAGS = ("fitrec.gate.decision", "fitrec.out.decision", "fitrec.out.check")


@dataclass(frozen=True)
class RunNode:
    run_id: str
    name: str
    status: str
    seconds: float | None  # None while it runs
    reused_from: str | None
    outcome: str | None
    children: tuple[RunNode, ...]


def run_tree(tracking_uri: str, run_id: str) -> RunNode:
    """The run `run_id` with every run nested under it, children in the order they started."""
    client = MlflowClient(tracking_uri=tracking_uri)
    root = client.get_run(run_id)
    experiment = root.info.experiment_id

    def node(run: object) -> RunNode:
        info, data = run.info, run.data  # type: ignore[attr-defined]
        nested = client.search_runs(
            [experiment],
            filter_string=f"tags.`mlflow.parentRunId` = '{info.run_id}'",
            order_by=["attributes.start_time ASC"],
            max_results=1000,
        )
        seconds = (info.end_time - info.start_time) / 1000 if info.end_time else None
        return RunNode(
            run_id=info.run_id,
            name=info.run_name or info.run_id,
            status=info.status,
            seconds=seconds,
            reused_from=data.tags.get(REUSED_TAG),
            outcome=next((data.tags[t] for t in OUTCOME_TAGS if t in data.tags), None),
            children=tuple(node(child) for child in nested),
        )

    return node(root)


def tree_lines(node: RunNode) -> list[str]:
    """The tree as text lines: name, status, duration, whether it was reused, the run id."""
    return [_label(node), *_children(node, "")]


def _children(node: RunNode, indent: str) -> list[str]:
    lines = []
    for i, child in enumerate(node.children):
        last = i == len(node.children) - 1
        lines.append(f"{indent}{'└─ ' if last else '├─ '}{_label(child)}")
        lines.extend(_children(child, indent + ("   " if last else "│  ")))
    return lines


def _label(node: RunNode) -> str:
    took = f"{node.seconds:.1f} s" if node.seconds is not None else "running"
    reused = f", reused {node.reused_from}" if node.reused_from else ""
    outcome = f" {node.outcome}" if node.outcome else ""
    return f"{node.name} [{node.status.lower()}, {took}{reused}]{outcome} {node.run_id}"
