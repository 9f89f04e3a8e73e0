"""Install a third-party nestq driver beside nestq and run the conformance suite on it (``tox -e suite-external``).

Usage::

    python scripts/check_external.py [--report DIR] PACKAGE [DRIVER] [nestq check options...]
    tox -e suite-external -- PACKAGE [DRIVER] [nestq check options...]

``PACKAGE`` is anything ``pip install`` takes: a project folder (``../nestq-sqs``), a wheel, a requirement
(``nestq-sqs==1.2``, ``nestq-sqs @ git+https://...``); the environment variable ``NESTQ_EXTERNAL_DRIVER`` is used
when it is not given. ``DRIVER`` is the driver's name in the ``nestq.drivers`` entry-point group; when it is left
out, the one driver the package added is used. The exit code is ``nestq check``'s (0: every rule that ran passed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

GROUP = "nestq.drivers"
REFERENCE = {"memory", "redis"}


def _drivers() -> dict[str, str]:
    """Driver name -> the entry point's value, as a fresh interpreter sees them after the install."""
    code = (
        "import json; from importlib.metadata import entry_points; "
        f"print(json.dumps({{ep.name: ep.value for ep in entry_points(group={GROUP!r})}}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    found: dict[str, str] = json.loads(done.stdout)
    return found


def main(argv: list[str]) -> int:
    """Install the package, pick the driver, run ``nestq check``; return its exit code."""
    parser = argparse.ArgumentParser(prog="check_external", description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", metavar="DIR", help="write the report card (JSON, Markdown, badge) into DIR")
    parser.add_argument("package", nargs="?", help="what to pip install (else env NESTQ_EXTERNAL_DRIVER)")
    parser.add_argument("driver", nargs="?", help="the driver's entry-point name (else the one the package added)")
    args, rest = parser.parse_known_args(argv)
    if args.driver is not None and args.driver.startswith("-"):
        rest, args.driver = [args.driver, *rest], None
    package = args.package or os.environ.get("NESTQ_EXTERNAL_DRIVER", "").strip()
    if not package:
        parser.error(
            "name the driver package: tox -e suite-external -- PATH_OR_REQUIREMENT [DRIVER], "
            "or set NESTQ_EXTERNAL_DRIVER"
        )
    if Path(package).expanduser().exists():
        package = str(Path(package).expanduser().resolve())

    before = _drivers()
    print(f"check_external: pip install {package}", flush=True)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, package], check=True)
    after = _drivers()

    driver = args.driver
    if driver is None:
        added = sorted(set(after) - set(before)) or sorted(set(after) - REFERENCE)
        if len(added) != 1:
            print(
                f"check_external: cannot tell which driver to check: the package added {added or 'none'} to the "
                f"{GROUP!r} entry points (installed: {sorted(after)}); name it: ... -- {package} DRIVER",
                file=sys.stderr,
            )
            return 2
        driver = added[0]
    if driver not in after:
        print(f"check_external: note: {driver!r} is not an entry point in {GROUP!r}; nestq check resolves it as a "
              "module or package.module:attribute", file=sys.stderr)
    else:
        print(f"check_external: driver {driver!r} -> {after[driver]}", flush=True)

    nestq = Path(sys.executable).with_name("nestq")
    command = [str(nestq), "check", driver]
    if args.report:
        command += ["--report", args.report]
    command += rest
    print("check_external: " + " ".join(command), flush=True)
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
