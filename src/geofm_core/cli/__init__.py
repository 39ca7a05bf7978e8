"""The ``geofm`` command: one module per command in this package, imported only when run.

``geofm plugins``, ``list`` and ``describe`` answer from the registry without importing
torch or lightning; every other command imports what it needs when it runs, so adding a
command never slows the fast ones down. Each command module has ``main(argv) -> int``.
Errors geofm raises on purpose (:class:`~geofm_core.errors.GeofmError`) print as one
paragraph; ``--debug`` (anywhere on the command line) or ``GEOFM_DEBUG=1`` shows the
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from geofm_core.errors import GeofmError, PluginWarning

__all__ = ["COMMANDS", "main"]

#: Every command: name -> (module in this package, help). The module is imported only
#: when its command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "plugins": ("plugins", "list installed plugins and their state"),
    # the module is not called `list`: as an attribute of this package it would shadow
    # the builtin here once imported
    "list": ("listing", "list components, e.g. geofm list backbone 'timm:resnet*'"),
    "describe": ("describe", "signature and documentation of a component, task or data "
                 "module: geofm describe [KIND] NAME"),
    "fit": ("train", "train a model: geofm fit -c config.yaml"),
    "validate": ("train", "validate a model on the validation set"),
    "test": ("train", "test a model on the test set"),
    "predict": ("train", "predict the predict_data_root chips of a config with a Lightning "
                "Trainer (several devices); for one raster of any size use infer"),
    "init": ("init", "write a starter config from the data: "
             "geofm init --images DIR --labels DIR -o config.yaml"),
    "stats": ("stats", "per-band means/stds of a training split: geofm stats -c config.yaml"),
    "infer": ("infer", "predict rasters of any size, streamed, without a config: "
              "geofm infer --ckpt CKPT INPUT.tif OUTPUT.tif"),
    "embed": ("embed", "embeddings of rasters with a backbone: GeoParquet vectors per "
              "chip, dense per-patch GeoTIFF: geofm embed INPUT --backbone NAME "
              "--chips OUT.parquet"),
    "export": ("export", "export a checkpoint: "
               "geofm export onnx|safetensors --ckpt CKPT --output FILE"),
    "convert": ("convert", "convert a TerraTorch config: "
                "geofm convert terratorch CONFIG.yaml -o OUT.yaml"),
    "completion": ("completion", "print a shell completion script: "
                   "geofm completion bash|zsh|tcsh"),
}

EXIT_ERROR = 1
#: A command line that names no command (bare ``geofm``), as argparse's usage errors.
EXIT_USAGE = 2
#: The reader of our output went away (``geofm list | head``): 128 + SIGPIPE, as a shell
#: reports a command killed by SIGPIPE.
EXIT_BROKEN_PIPE = 141


def _parser() -> argparse.ArgumentParser:
    from geofm_core import __version__

    parser = argparse.ArgumentParser(
        prog="geofm",
        description="Fine-tune geospatial foundation models; components come from plugins.",
        epilog="`geofm COMMAND --help` shows the options of a command.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"geofm {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _show_warning(
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
        return exc.exit_code


def command_main(name: str) -> Callable[[list[str]], int]:
    """The ``main(argv)`` of command ``name`` (its module imported now)."""
    module = importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
    if COMMANDS[name][0] == "train":  # one module, the four Lightning subcommands
        train_main: Callable[[list[str]], int] = module.main
        return lambda argv: train_main([name, *argv])
    command: Callable[[list[str]], int] = module.main
    return command


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``geofm`` command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or bool(os.environ.get("GEOFM_DEBUG"))
    original_showwarning = warnings.showwarning
    if not debug:
        warnings.showwarning = _show_warning  # type: ignore[assignment]
    warnings.simplefilter("default", PluginWarning)
    try:
        name = next((a for a in argv if not a.startswith("-")), None)
        if name not in COMMANDS:
            _parser().parse_args(argv)  # --help, --version; exits on an unknown name
            _parser().print_help(sys.stderr)
            return EXIT_USAGE
        at = argv.index(name)
        # Options before the name (--debug) stay; each command ignores --debug itself.
        rest = argv[:at] + argv[at + 1:]
        return _run(lambda: command_main(name)(rest), debug)
    finally:
        warnings.showwarning = original_showwarning


def _entry() -> Any:
    try:
        code = main()
        sys.stdout.flush()  # a closed pipe shows here rather than at interpreter exit
    except BrokenPipeError:
        # Python would print a traceback while flushing stdout at exit: point stdout at
        # /dev/null first, then leave quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = EXIT_BROKEN_PIPE
    sys.exit(code)
