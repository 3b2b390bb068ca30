"""Reprint the p-values of archived `derta_recipe.py` tables with the clustered test.

Tables exported before `safekeel.stats.cluster_sign_flip_p` printed McNemar's exact p over every (behavior, seed)
pair, which overstates when a behavior has several seeds or a one-seed baseline stands beside three. Each export
keeps the command that made it; this reruns the command into a temporary export and, when the new table equals the
old one with every p-value and the caption masked (same rates, same CIs: nothing else moved), replaces the table
and records `p_test`. Anything else is reported and left as it was measured.

    python benchmarks/reprint_p.py benchmarks/results/derta_levers_wide.json ...
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from safekeel.io import write_json

P_TEST = "exact sign-flip over behaviors, each with all its seeds (safekeel.stats.cluster_sign_flip_p)"
CAPTIONS = ("exact McNemar p", "exact sign-flip p over behaviors", "exact sign-flip p over prompts")


def masked(table: str) -> str:
    table = re.sub(r"p=[0-9.e+-]+", "p=?", table)
    for c in CAPTIONS:
        table = table.replace(c, "<p>")
    return table


def reprint(path: Path) -> str:
    export = json.loads(path.read_text())
    if export.get("p_test") == P_TEST:
        return "already clustered"
    argv = shlex.split(export["command"])
    if argv[:2] != ["python", "benchmarks/derta_recipe.py"] or "--export" not in argv:
        return "not a derta_recipe.py export"
    with tempfile.TemporaryDirectory() as tmp:
        i = argv.index("--export")
        argv[i + 1] = str(Path(tmp) / path.name)
        run = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True)
        if run.returncode:
            last = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode
            return f"its command failed: {last}"
        table = json.loads(Path(argv[i + 1]).read_text())["table"]
    if masked(table) != masked(export["table"]):
        return "the rerun differs beyond the p-values (arms or rows changed since): left as measured"
    if table == export["table"]:
        return "no p-value changed"
    write_json(path, {**export, "table": table, "p_test": P_TEST})  # atomic
    return "reprinted"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("exports", nargs="+", type=Path)
    for path in ap.parse_args().exports:
        print(f"{path.name}: {reprint(path)}", flush=True)


if __name__ == "__main__":
    main()
