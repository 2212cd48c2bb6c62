"""Per-run validation report: report.json, an index.html summary, and GE data docs pages per suite."""

import html
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def render_suite_page(result: Any, path: Path) -> bool:
    """Render one suite's validation result as a GE data docs page; False if GE cannot render it."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    try:
        page = DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result))
    except Exception:  # noqa: BLE001 - the report must not fail the run; the JSON report is complete
        log.exception("GE could not render %s", path.name)
        return False
    path.write_text(page, encoding="utf-8")
    return True


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_index(run_dir: Path, summary: dict[str, Any], pages: list[str]) -> Path:
    """index.html: totals, the conservation law, rows per type, every failing check, links to suite pages."""
    totals = ["received", "stored", "quarantined", "duplicates"]
    holds = summary["received"] == summary["stored"] + summary["quarantined"] + summary["duplicates"]
    by_type = [[t, c["stored"], c["quarantined"]] for t, c in sorted(summary.get("by_type", {}).items())]
    failing = [[name, count] for name, count in sorted(summary.get("rows_failing", {}).items())]
    links = "".join(f'<li><a href="{html.escape(p)}">{html.escape(p)}</a></li>' for p in pages)
    document = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>fitrec validation {html.escape(summary["run_id"])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}</style></head><body>
<h1>Event validation run {html.escape(summary["run_id"])}</h1>
<p>validated as of {html.escape(summary["now"])}; {summary["seconds"]} s;
received = stored + quarantined + duplicates: <b>{"holds" if holds else "BROKEN"}</b></p>
{_table(totals, [[summary[k] for k in totals]])}
<h2>Rows per event type</h2>{_table(["event type", "stored", "quarantined"], by_type)}
<h2>Rows failing each expectation</h2>{_table(["expectation", "rows"], failing) if failing else "<p>none</p>"}
<h2>Great Expectations data docs</h2><ul>{links or "<li>none</li>"}</ul>
</body></html>
"""
    path = run_dir / "index.html"
    path.write_text(document, encoding="utf-8")
    (run_dir / "report.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return path
