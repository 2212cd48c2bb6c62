"""Schemathesis over the app's whole OpenAPI document, once per caller, through its own CLI.

The JSON run report of each run gives the number of generated cases and the failures by
kind; they are sorted into server errors (5xx), status-code conformance (an answer the
document does not list) and schema conformance (a body, content type or header that does not
match the document).
"""

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
SERVER_ERRORS = {"ServerError"}
STATUS_ERRORS = {"UndefinedStatusCode"}


@dataclass
class FuzzResult:
    profile: str
    caller: str
    cases: int = 0
    server_errors: int = 0
    status_violations: int = 0
    schema_violations: int = 0
    operations: int = 0
    failures: list[str] = field(default_factory=list)  # "kind: operations" lines for the report


def run_schemathesis(
    base: str, *, profile: str, caller: str, headers: dict[str, str], out: Path, max_examples: int, seed: int
) -> FuzzResult:
    binary = str(Path(sys.executable).parent / "schemathesis")  # the one installed beside this Python
    report = out / f"schemathesis-{profile}-{caller.replace(' ', '-')}.json"
    command = [binary, "run", f"{base}/openapi.json", "--checks", CHECKS, "--max-examples", str(max_examples)]
    command += ["--seed", str(seed), "--workers", "1", "--no-color", "--report", "json"]
    command += ["--report-json-path", str(report), "--request-timeout", "10", "--generation-database", "none"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    with (out / f"schemathesis-{profile}-{caller.replace(' ', '-')}.log").open("w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    return parse_report(json.loads(report.read_text()), profile=profile, caller=caller)


def parse_report(report: dict, *, profile: str, caller: str) -> FuzzResult:  # type: ignore[type-arg]
    result = FuzzResult(
        profile=profile,
        caller=caller,
        cases=int(report["test_cases"]["generated"]),
        operations=int(report["operations"]["tested"]),
    )
    for failure in report["failures"]:
        count = int(failure["count"])
        if failure["type"] in SERVER_ERRORS:
            result.server_errors += count
        elif failure["type"] in STATUS_ERRORS:
            result.status_violations += count
        else:
            result.schema_violations += count
        result.failures.append(f"{failure['title']} ({failure['code']}): {', '.join(failure['operations'])}")
    for error in report.get("errors", []):
        result.failures.append(f"error: {error}")
    return result
