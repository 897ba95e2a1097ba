"""What starting graylink loads: --help, status and a run without media servers never load
requests (70 ms of imports, a fifth of a no-change cycle as a process) nor the Drive client.

The notifiers, init's discovery and the Drive feed are imported where they are used
(docs/performance.md, "Fewer imports"); an import at the top of a module low in the
layers (the queue, the checks) quietly brings them back into every command.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO, Library

HEAVY = ("requests", "urllib3", "googleapiclient", "apprise", "jinja2")

PROBE = """
import json, sys
from graylink.cli import cli
try:
    cli.main(args=sys.argv[1:], prog_name="graylink", standalone_mode=False)
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in %r)), file=sys.stderr)
"""


def loaded(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    last = done.stderr.strip().splitlines()[-1]
    found: list[str] = json.loads(last)
    return found


def test_help_loads_no_client_library() -> None:
    assert loaded("--help") == []


def test_status_and_a_run_without_servers_load_no_client_library(lib: Library) -> None:
    lib.add("Movies/Alien (1979)/Alien (1979).mkv")
    lib.write_ini()
    assert loaded("-c", str(lib.ini), "reconcile") == []
    assert loaded("-c", str(lib.ini), "status") == []
