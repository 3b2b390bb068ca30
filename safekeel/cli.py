"""`safekeel` command line: one verb per pipeline stage.

Each area registers its own verbs (`register(subparsers)` in `safekeel/<area>/cli.py`), so the CLI mirrors the
pipeline: data -> train -> units -> attack/eval -> judge -> report, plus `models` and `demo`.
A `SafekeelError` (bad input, unknown model, corrupt artifact) prints one line and exits with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .errors import SafekeelError

AREAS = ["safekeel.data.cli", "safekeel.train.cli", "safekeel.units.cli", "safekeel.attacks.cli",
         "safekeel.judges.cli", "safekeel.eval.cli", "safekeel.demo", "safekeel.tamper"]


def _models(sub) -> None:
    p = sub.add_parser("models", help="list or prepare models (the embedded default, HF ids, local paths)")
    msub = p.add_subparsers(dest="models_cmd", required=True)
    msub.add_parser("list", help="embedded models and whether they are prepared").set_defaults(func=_models_list)
    pp = msub.add_parser("prepare", help="materialise an embedded model as a safetensors folder")
    pp.add_argument("name", nargs="?", default="smollm2-135m")
    pp.add_argument("--force", action="store_true", help="rebuild even if already prepared")
    pp.set_defaults(func=_models_prepare)


def _models_list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from .models import describe

    table = Table(title="embedded models")
    for col in ("name", "prepared", "license", "description", "path"):
        table.add_column(col, overflow="fold")
    for m in describe():
        table.add_row(m["name"], "yes" if m["prepared"] else "no", m["license"], m["description"], m["path"])
    Console().print(table)
    print("Any Hugging Face model id or local folder also works wherever a model is asked for.")
    return 0


def _models_prepare(args) -> int:
    from .models import prepare

    path = prepare(args.name, force=args.force)
    print(f"{args.name}: ready at {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safekeel", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"safekeel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _models(sub)
    for name in AREAS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and (name == e.name or name.startswith(e.name + ".")):
                continue  # area not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SafekeelError as e:
        print(f"safekeel: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("safekeel: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
