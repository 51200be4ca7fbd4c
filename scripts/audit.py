"""`make audit`: known vulnerabilities in the pinned dependency set (constraints.txt), with pip-audit.

Audits exactly the pinned versions (``--no-deps --disable-pip``: nothing is installed or
resolved). pip-audit asks a vulnerability service over the network; where that service cannot
be reached, or answers "not found" for every package, pip-audit itself still says "No known
vulnerabilities found". This wrapper tells those cases apart and says plainly what was and
was not checked.

Exit status: 1 when a vulnerability is found; 0 otherwise, including when nothing could be
checked (said loudly) unless ``AUDIT_STRICT=1``, which makes that 2. ``AUDIT_SERVICE`` picks
pip-audit's service (``pypi``, the default, or ``osv``); ``AUDIT_FILE`` the pinned file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_pip_audit(requirements: Path, service: str, report: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pip_audit", "--requirement", str(requirements), "--no-deps", "--disable-pip",
               "--vulnerability-service", service, "--progress-spinner", "off", "--format", "json",
               "--output", str(report)]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT)


def summarise(report: dict) -> tuple[list[dict], list[dict], list[dict]]:
    """``(vulnerable, audited, skipped)`` dependencies of a pip-audit JSON report."""
    dependencies = report.get("dependencies", [])
    skipped = [d for d in dependencies if d.get("skip_reason")]
    audited = [d for d in dependencies if not d.get("skip_reason")]
    vulnerable = [d for d in audited if d.get("vulns")]
    return vulnerable, audited, skipped


def main() -> int:
    requirements = ROOT / os.environ.get("AUDIT_FILE", "constraints.txt")
    service = os.environ.get("AUDIT_SERVICE", "pypi")
    strict = os.environ.get("AUDIT_STRICT") == "1"
    unchecked_status = 2 if strict else 0
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "audit.json"
        result = run_pip_audit(requirements, service, report_path)
        report = json.loads(report_path.read_text()) if report_path.exists() else None
    print(f"make audit: pip-audit ({service} service) on {requirements.name}, pinned versions, no install")
    if report is None:
        detail = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"make audit: NOTHING WAS CHECKED: pip-audit could not complete (exit {result.returncode}); "
              f"most likely the vulnerability service is unreachable from here.\n  {detail[:400]}")
        return unchecked_status
    vulnerable, audited, skipped = summarise(report)
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
            print(f"  VULNERABLE {dependency['name']}=={dependency['version']}: {vuln['id']} "
                  f"(fixed in: {fixes}) {' '.join(vuln.get('aliases') or [])}")
    if vulnerable:
        print(f"make audit: {sum(len(d['vulns']) for d in vulnerable)} known vulnerabilities in {len(vulnerable)} "
              f"of {len(audited)} audited packages; upgrade the pins in requirements.txt, then `make lock`")
        return 1
    if not audited:
        reasons = sorted({d["skip_reason"].split(":")[0] for d in skipped})
        print(f"make audit: NOTHING WAS CHECKED: the vulnerability service answered for none of the {len(skipped)} "
              f"pinned packages ({'; '.join(reasons)}). pip-audit reports this as 'no known vulnerabilities'; "
              "it is not. Run `make audit` where the service is reachable (or AUDIT_SERVICE=osv).")
        return unchecked_status
    if skipped:
        print(f"make audit: no known vulnerabilities in {len(audited)} audited packages; "
              f"{len(skipped)} could not be checked: {', '.join(d['name'] for d in skipped)}")
        return unchecked_status if strict else 0
    print(f"make audit: no known vulnerabilities in all {len(audited)} pinned packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
