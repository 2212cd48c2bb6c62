"""The security checks: the test suite's `security` tests, run and counted per module.

Each defect of the security review and each attack that already holds (JWT `alg: none`,
HS/RS confusion, foreign `kid`, wrong audience or issuer, expired, tampered, replayed nonce,
IDOR on owned resources, scopes, webhook signature/timestamp/replay, idempotency under
concurrency) is a test marked `security`; this runs them against the given servers.
"""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SecurityResult:
    module: str
    passed: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: int = 0


def run_security_tests(*, out: Path, database_url: str, redis_url: str, repo: Path) -> list[SecurityResult]:
    junit = out / "security-junit.xml"
    env = dict(os.environ, CI="true", DATABASE_URL=database_url, REDIS_URL=redis_url)
    with (out / "security-pytest.log").open("w") as log:
        subprocess.run(
            [sys.executable, "-m", "pytest", "-m", "security", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"],
            cwd=repo,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    return parse_junit(junit)


def parse_junit(path: Path) -> list[SecurityResult]:
    results: dict[str, SecurityResult] = defaultdict(lambda: SecurityResult(module=""))
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "?").removeprefix("tests.")
        result = results[module]
        result.module = module
        if case.find("failure") is not None or case.find("error") is not None:
            result.failed.append(case.get("name", "?"))
        elif case.find("skipped") is not None:
            result.skipped += 1
        else:
            result.passed += 1
    return sorted(results.values(), key=lambda r: r.module)
