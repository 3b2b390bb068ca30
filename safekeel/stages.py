"""Named pipeline stages that run once: skipped when their output exists, timed, shown (demo and tamper)."""

from __future__ import annotations

import time
from pathlib import Path


class Stages:
    """Runs named stages once, times them, and shows what is happening."""

    def __init__(self, out: Path, console):
        self.out, self.console, self.times = out, console, {}

    def run(self, name: str, done: Path, fn, *args, **kw):
        if done.exists():
            self.console.print(f"[dim]✓ {name}: reusing {done.parent if done.suffix else done}[/]")
            self.times[name] = 0.0
            return done
        self.console.rule(f"[bold]{name}")
        t0 = time.time()
        result = fn(*args, **kw)
        self.times[name] = round(time.time() - t0, 1)
        self.console.print(f"[green]✓ {name}[/] in {self.times[name]} s")
        return result
