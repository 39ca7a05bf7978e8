"""``geofm completion bash|zsh|tcsh``: a shell completion script for ``geofm``.

Completes the commands, the options of the commands with their own parser (``infer``,
``export``, ``stats``, ``list``, ...) and file names where a file is expected. The
Lightning subcommands (``fit``, ``validate``, ``test``, ``predict``) complete ``-c``
files and geofm's options here; jsonargparse prints the completion of every one of
their options with ``geofm fit --print_shtab bash``. Install with e.g.
``geofm completion bash > ~/.local/share/bash-completion/completions/geofm``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from geofm_core.cli._common import command_parser

__all__ = ["completion_parser", "main"]

SHELLS = ("bash", "zsh", "tcsh")
_LIGHTNING = ("fit", "validate", "test", "predict")
# Options that name a file or folder: the shell completes paths there.
_PATH_DESTS = {"config", "ckpt", "ckpt_path", "input", "output", "data_root", "source"}


def _lightning_parser(name: str, help_text: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"geofm {name}", description=help_text)
    parser.add_argument("-c", "--config", help="config file")
    parser.add_argument("--ckpt_path", "--ckpt", dest="ckpt_path", help="checkpoint")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--print_config", action="store_true")
    parser.add_argument("--debug", action="store_true")
    return parser


def completion_parser() -> argparse.ArgumentParser:
    """``geofm`` with every command's parser as a subparser (nothing heavy is imported)."""
    import shtab

    from geofm_core.cli import COMMANDS

    parser = argparse.ArgumentParser(prog="geofm")
    parser.add_argument("-V", "--version", action="store_true")
    parser.add_argument("--debug", action="store_true")
    sub = parser.add_subparsers(dest="command")
    for name, (module, help_text) in COMMANDS.items():
        if name in _LIGHTNING:
            command = _lightning_parser(name, help_text)
        else:
            command = importlib.import_module(f"geofm_core.cli.{module}")._parser()
        sub._name_parser_map[name] = command  # the command's own parser, as it is
        sub._choices_actions.append(sub._ChoicesPseudoAction(name, (), help_text))
        for action in command._actions:
            if action.dest in _PATH_DESTS:
                action.complete = shtab.FILE  # type: ignore[attr-defined]
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("completion", "Print a shell completion script for geofm.")
    parser.add_argument("shell", choices=SHELLS)
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``geofm completion SHELL``; returns the exit code."""
    import shtab

    args = _parser().parse_args(list(argv))
    sys.stdout.write(shtab.complete(completion_parser(), shell=args.shell))
    return 0
