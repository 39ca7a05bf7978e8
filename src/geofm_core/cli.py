"""The ``geofm`` command.

``plugins``, ``list`` and ``describe`` answer from the registry without importing
torch or lightning. Heavier commands live in their own modules and are imported
only when invoked, so adding them does not slow the fast ones down.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from geofm_core.errors import GeofmError, PluginWarning
from geofm_core.names import KINDS

__all__ = ["main"]

#: Commands implemented elsewhere: name -> ("module:function", help). Each function
#: takes the remaining argv and returns an exit code.
HEAVY_COMMANDS: dict[str, tuple[str, str]] = {
    "fit": ("geofm_core.training_cli:fit", "train a model: geofm fit -c config.yaml"),
    "validate": ("geofm_core.training_cli:validate", "validate a model on the validation set"),
    "test": ("geofm_core.training_cli:test", "test a model on the test set"),
    "predict": ("geofm_core.training_cli:predict", "predict with a model"),
    "stats": ("geofm_core.data.stats:main", "per-band means/stds of a training split: "
              "geofm stats -c config.yaml"),
    "infer": ("geofm_core.inference.cli:main", "predict one raster of any size, streamed: "
              "geofm infer --ckpt CKPT INPUT.tif OUTPUT.tif"),
    "export": ("geofm_core.export.cli:main", "export a checkpoint: "
               "geofm export onnx|safetensors --ckpt CKPT --output FILE"),
    "convert": ("geofm_core.convert.terratorch:main", "convert a TerraTorch config: "
                "geofm convert terratorch CONFIG.yaml -o OUT.yaml"),
}

EXIT_ERROR = 1


def _table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)] + [row[-1]]
        out.write("  ".join(cells).rstrip() + "\n")


def _cmd_plugins(args: argparse.Namespace, out: TextIO) -> int:
    from geofm_core.registry import get_registry

    plugins = get_registry().plugins
    if args.json:
        json.dump([p.as_dict() for p in plugins], out, indent=2)
        out.write("\n")
        return 0
    rows = [("SOURCE", "DISTRIBUTION", "VERSION", "STATUS", "HOOKS")]
    for p in plugins:
        hooks = ", ".join(h.removeprefix("geofm_") for h in p.hooks)
        rows.append((p.source, p.distribution, p.version, p.status, hooks or "-"))
    _table(rows, out)
    for p in plugins:
        if p.error:
            out.write(f"\n{p.source} ({p.distribution}): {p.error}\n")
    return 0


def _cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    from geofm_core.registry import get_registry

    kind, pattern = args.kind, args.pattern
    if kind is not None and kind not in KINDS:
        if pattern is not None:
            from geofm_core.names import check_kind

            check_kind(kind)
        kind, pattern = None, kind  # `geofm list 'prithvi:*'`
    registry = get_registry()
    specs = registry.list(kind, pattern)
    if args.json:
        json.dump([s.as_dict() for s in specs], out, indent=2)
        out.write("\n")
        return 0
    rows = [("KIND", "NAME", "DESCRIPTION")]
    rows += [(s.kind, s.qualified_name, s.description) for s in specs]
    if len(rows) > 1:
        _table(rows, out)
    else:
        what = f"{kind or 'component'}s" + (f" matching {pattern!r}" if pattern else "")
        out.write(f"no {what}; `geofm plugins` shows the installed plugins\n")
    dynamic = [s for s in registry.dynamic_sources() if not (pattern or "").startswith(f"{s}:")]
    if dynamic:
        out.write(
            f"\nDynamic sources resolve names on demand: {', '.join(dynamic)}. "
            f"List them with a pattern, e.g. geofm list backbone '{dynamic[0]}:resnet*'\n"
        )
    return 0


def _cmd_describe(args: argparse.Namespace, out: TextIO) -> int:
    from geofm_core.names import check_kind
    from geofm_core.registry import get_registry

    info = get_registry().describe(check_kind(args.kind), args.name)
    if args.json:
        json.dump(info, out, indent=2)
        out.write("\n")
        return 0
    out.write(f"{info['kind']} {info['name']}{info['signature']}\n")
    out.write(f"  from {info['distribution']} {info['version']} ({info['target']})\n")
    if info["doc"]:
        out.write("\n" + info["doc"] + "\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    from geofm_core import __version__

    parser = argparse.ArgumentParser(
        prog="geofm",
        description="Fine-tune geospatial foundation models; components come from plugins.",
    )
    parser.add_argument("--version", action="version", version=f"geofm {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("plugins", help="list installed plugins and their state")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser("list", help="list components, e.g. geofm list backbone 'prithvi:*'")
    p.add_argument("kind", nargs="?", help=f"one of {', '.join(KINDS)} (default: all)")
    p.add_argument("pattern", nargs="?", help="fnmatch pattern, e.g. 'timm:resnet*'")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("describe", help="signature and documentation of one component")
    p.add_argument("kind", help=f"one of {', '.join(KINDS)}")
    p.add_argument("name", help="source:name (or a bare name)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_describe)

    for name, (_, help_text) in HEAVY_COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _show_plugin_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int,
    file: TextIO | None = None, line: str | None = None,
) -> None:
    sys.stderr.write(f"warning: {message}\n")


def _run(func: Callable[[], int], debug: bool) -> int:
    try:
        return func()
    except GeofmError as exc:
        if debug:
            traceback.print_exc()
        else:
            sys.stderr.write(f"error: {exc}\n")
            if exc.__cause__ is not None:
                cause = " ".join(str(exc.__cause__).split())
                cause = cause if len(cause) <= 300 else cause[:297] + "..."
                sys.stderr.write(f"  caused by {type(exc.__cause__).__name__}: {cause}\n")
            sys.stderr.write("  (run with --debug for the traceback)\n")
        return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``geofm`` command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or bool(os.environ.get("GEOFM_DEBUG"))
    original_showwarning = warnings.showwarning
    if not debug:
        warnings.showwarning = _show_plugin_warning  # type: ignore[assignment]
    warnings.simplefilter("default", PluginWarning)
    try:
        heavy = next((a for a in argv if not a.startswith("-")), None)
        if heavy in HEAVY_COMMANDS:
            rest = [a for a in argv if a != heavy]
            module_name, _, func_name = HEAVY_COMMANDS[heavy][0].partition(":")
            command: Callable[[list[str]], int] = getattr(
                importlib.import_module(module_name), func_name
            )
            return _run(lambda: command(rest), debug)
        args = _parser().parse_args(argv)
        if args.command is None:
            _parser().print_help()
            return 0
        func: Callable[[argparse.Namespace, TextIO], int] = args.func
        return _run(lambda: func(args, sys.stdout), debug)
    finally:
        warnings.showwarning = original_showwarning


def _entry() -> Any:
    sys.exit(main())


if __name__ == "__main__":
    _entry()
