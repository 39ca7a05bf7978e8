"""``geofm convert FRAMEWORK CONFIG.yaml [--ckpt CKPT -o OUT.ckpt | -o OUT.yaml]``.

Another framework's config as geofm YAML or, with ``--ckpt``, its trained checkpoint as
a geofm checkpoint (``geofm infer --ckpt``, ``--ckpt_path``, ``weights_path``). The
conversion itself lives in :mod:`geofm_core.convert`; this module parses the command
line, writes the result atomically and reports what was not converted on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geofm_core.cli._common import command_parser
from geofm_core.convert.terratorch import convert_file, render
from geofm_core.io.atomic import atomic_output, check_input_file, check_output
from geofm_core.io.yaml_files import read_yaml

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("convert", "Convert another framework's config to a geofm config.")
    sub = parser.add_subparsers(dest="framework", metavar="FRAMEWORK", required=True)
    p = sub.add_parser("terratorch", help="a TerraTorch LightningCLI YAML (terratorch fit -c)")
    p.add_argument("config", nargs="?", help="the TerraTorch YAML config (not with --hf)")
    p.add_argument("-o", "--output", help="write the geofm YAML (or, with --ckpt, the geofm "
                   "checkpoint) here; YAML goes to stdout by default")
    p.add_argument("--ckpt", help="a TerraTorch checkpoint trained with CONFIG: convert its "
                   "weights too and write a geofm checkpoint to -o")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    p.add_argument("--hf", metavar="REPO_ID", help="a fine-tuned TerraTorch model published "
                   "on the Hugging Face Hub (org/name): its config and checkpoint, from the "
                   "hub cache (HF_HUB_OFFLINE=1: the cache only), converted to the geofm "
                   "checkpoint -o")
    p.add_argument("--config-file", help="with --hf: the config's file name in the repo")
    p.add_argument("--checkpoint-file", help="with --hf: the checkpoint's file name in the repo")
    return parser


def _resolve_sources(args: argparse.Namespace) -> None:
    """Fill ``args.config``/``args.ckpt`` from ``--hf``; exactly one source is needed."""
    from geofm_core.errors import ConfigurationError

    if args.hf is None:
        if args.config is None:
            raise ConfigurationError("give the TerraTorch CONFIG.yaml to convert, or --hf "
                                     "REPO_ID for a published model")
        return
    if args.config is not None or args.ckpt is not None:
        raise ConfigurationError("--hf REPO_ID brings its own config and checkpoint; leave "
                                 "out CONFIG and --ckpt (or use them without --hf)")
    from geofm_core.convert.terratorch.hub import resolve_hub_model

    model = resolve_hub_model(args.hf, config_file=args.config_file,
                              checkpoint_file=args.checkpoint_file)
    args.config, args.ckpt = str(model.config), str(model.checkpoint)
    sys.stderr.write(f"{args.hf}: {model.config.name} and {model.checkpoint.name}\n")


def _write_checkpoint(args: argparse.Namespace) -> list[str]:
    """Convert ``--ckpt`` and save it at ``-o``; returns the report's lines."""
    import torch

    from geofm_core.convert.terratorch.checkpoint import convert_checkpoint
    from geofm_core.errors import ConfigurationError
    from geofm_core.io.checkpoints import read_checkpoint

    if not args.output:
        raise ConfigurationError("--ckpt writes a geofm checkpoint: give its path with -o "
                                 "(e.g. -o model.ckpt)")
    if Path(args.output).is_dir():
        raise ConfigurationError(f"-o {args.output} is a folder; give the checkpoint's file "
                                 "name (e.g. -o model.ckpt)")
    result = convert_checkpoint(args.ckpt, args.config)

    def verify(temp: Path, final: Path) -> None:
        read_checkpoint(temp, mmap=True)

    with atomic_output(Path(args.output), overwrite=args.overwrite, verify=verify) as temp:
        torch.save(result.checkpoint, temp)
    _report(result.config, args.config)
    if result.dropped:
        sys.stderr.write(f"{len(result.dropped)} tensor(s) of {args.ckpt} left out:\n")
        sys.stderr.writelines(f"  - {item}\n" for item in result.dropped)
    sys.stderr.write(f"wrote {args.output} ({len(result.checkpoint['state_dict'])} tensors)\n")
    return result.dropped


def _report(conversion: Any, source: str) -> None:
    err = sys.stderr
    if conversion.unmapped:
        err.write(f"{len(conversion.unmapped)} setting(s) of {source} not converted "
                  "(also listed at the top of the output):\n")
        err.writelines(f"  - {item}\n" for item in conversion.unmapped)
    if conversion.notes:
        err.write(f"{len(conversion.notes)} note(s):\n")
        err.writelines(f"  - {item}\n" for item in conversion.notes)


def main(argv: Sequence[str]) -> int:
    """``geofm convert terratorch CONFIG.yaml [--ckpt CKPT] [-o OUT]``; returns the exit code.

    Raises:
        ConfigurationError: The input is not a readable TerraTorch config (or has a key
            twice), or the output is the input, a folder, or exists without --overwrite.
        OutputExistsError: ``-o`` names an existing file and --overwrite is not given.
    """
    # --debug may follow the framework's arguments, where the top parser does not see it.
    args = _parser().parse_args([a for a in argv if a != "--debug"])
    _resolve_sources(args)
    check_input_file(args.config, "config", "give a TerraTorch YAML config")
    if args.ckpt:
        check_input_file(args.ckpt, "--ckpt", "give the TerraTorch .ckpt trained with CONFIG")
    if args.output:  # before any work; the sources are never replaced, even with --overwrite
        check_output(Path(args.output), overwrite=args.overwrite,
                     inputs=[args.config, *([args.ckpt] if args.ckpt else [])])
    read_yaml(args.config)  # a key given twice is an error, not the last one winning
    if args.ckpt:
        _write_checkpoint(args)
        return 0
    conversion = convert_file(args.config)
    text = render(conversion)
    if args.output:
        with atomic_output(Path(args.output), overwrite=args.overwrite,
                           inputs=[args.config]) as temp:
            temp.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    _report(conversion, args.config)
    if args.output:
        sys.stderr.write(f"wrote {args.output}\n")
    return 0
