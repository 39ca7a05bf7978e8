"""``geofm list [KIND] [PATTERN] [--band B] [--modality M]``: registered components.

No torch import: the filters read the metadata plugins declare in their light modules
(:mod:`geofm_core.metadata`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from geofm_core.cli._common import command_parser, write_table
from geofm_core.names import KINDS, check_kind

__all__ = ["main", "shorten_names"]

#: Widest WEIGHTS cell before the names are shortened to "a, b, +3 more".
WEIGHTS_WIDTH = 48


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "list", "List components, e.g. geofm list decoder 'geofm:*', "
        "geofm list backbone --band B8A --modality sar.", json_output=True)
    parser.add_argument("kind", nargs="?", help=f"one of {', '.join(KINDS)} (default: all)")
    parser.add_argument("pattern", nargs="?", help="fnmatch pattern, e.g. 'timm:resnet*'")
    parser.add_argument(
        "--band", action="append", default=[], metavar="BAND",
        help="only components whose weights (or native bands) include BAND; repeat or "
        "separate with commas for several (all must match). geofm or Sentinel-2 names "
        "(NIR_NARROW, B8A, VV, ...)")
    parser.add_argument(
        "--modality", action="append", default=[], metavar="MODALITY",
        help="only components for one of these modalities (multispectral, sar, rgb, ...); "
        "repeat or separate with commas")
    return parser


def _split(values: Sequence[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _filters(parser: argparse.ArgumentParser, args: argparse.Namespace) -> (
    tuple[list[str], list[str]]
):
    """The canonical bands and modalities asked for; a bad name is a usage error (exit 2)."""
    from geofm_core.data.bands import band_names, canonical_band
    from geofm_core.metadata import MODALITIES

    bands = []
    for value in _split(args.band):
        band = canonical_band(value)
        if band is None:
            parser.error(f"--band: unknown band {value!r}; valid names are "
                         f"{', '.join(band_names())}, or Sentinel-2 names (B1-B12, B02, B8A)")
        bands.append(band)
    modalities = [m.lower() for m in _split(args.modality)]
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        parser.error(f"--modality: unknown modality {unknown[0]!r}; valid modalities are "
                     f"{', '.join(MODALITIES)}")
    return list(dict.fromkeys(bands)), list(dict.fromkeys(modalities))


def shorten_names(names: Sequence[str], width: int = WEIGHTS_WIDTH) -> str:
    """``names`` joined by commas, cut to ``a, b, +N more`` when longer than ``width``."""
    text = ", ".join(names)
    if len(text) <= width:
        return text
    kept: list[str] = []
    for name in names:
        rest = len(names) - len(kept) - 1
        if len(", ".join([*kept, name])) + len(f", +{rest} more") > width and kept:
            break
        kept.append(name)
    rest = len(names) - len(kept)
    return ", ".join(kept) + (f", +{rest} more" if rest else "")


def _query(bands: Sequence[str], modalities: Sequence[str]) -> str:
    parts = []
    if bands:
        parts.append(f"band{'s' if len(bands) > 1 else ''} {', '.join(bands)}")
    if modalities:
        parts.append(f"modality {' or '.join(modalities)}")
    return " and ".join(parts)


def main(argv: Sequence[str]) -> int:
    """Run ``geofm list``; returns the exit code."""
    from geofm_core.registry import get_registry

    parser = _parser()
    args = parser.parse_args(list(argv))
    bands, modalities = _filters(parser, args)
    filtered = bool(bands or modalities)
    out = sys.stdout
    kind, pattern = args.kind, args.pattern
    if kind is not None and kind not in KINDS:
        if pattern is not None:
            check_kind(kind)
        kind, pattern = None, kind  # `geofm list 'geofm:*'`
    registry = get_registry()
    specs = registry.list(kind, pattern)
    unsearchable = 0
    weights: dict[str, list[str]] = {}
    if filtered:
        searchable = [s for s in specs if s.metadata is not None]
        unsearchable = len(specs) - len(searchable)
        specs = [s for s in searchable if s.metadata and s.metadata.matches(bands, modalities)]
        weights = {s.qualified_name: [w.name for w in s.metadata.matching_weights(
            bands, modalities)] for s in specs if s.metadata}
    not_searched = (f"{unsearchable} {kind or 'component'}{'s' if unsearchable != 1 else ''} "
                    "declare no metadata and were not searched\n") if unsearchable else ""
    if args.json:
        views: list[dict[str, Any]] = []
        for s in specs:
            view = s.as_dict()
            if filtered:
                view["matching_weights"] = weights.get(s.qualified_name, [])
            views.append(view)
        json.dump(views, out, indent=2)
        out.write("\n")
        sys.stderr.write(not_searched)
        return 0 if specs else 1
    found = True
    rows: list[tuple[str, ...]]
    if filtered:
        rows = [("KIND", "NAME", "WEIGHTS", "DESCRIPTION")]
        rows += [(s.kind, s.qualified_name, shorten_names(weights[s.qualified_name]) or "-",
                  s.description) for s in specs]
    else:
        rows = [("KIND", "NAME", "DESCRIPTION")]
        rows += [(s.kind, s.qualified_name, s.description) for s in specs]
    if len(rows) > 1:
        write_table(rows, out)
    else:
        what = f"{kind or 'component'}s" + (f" matching {pattern!r}" if pattern else "")
        what += f" with {_query(bands, modalities)}" if filtered else ""
        out.write(f"no {what}; `geofm plugins` shows the installed plugins\n")
        found = False
    if not_searched:
        out.write(f"\n{not_searched}")
    dynamic = [s for s in registry.dynamic_sources() if not (pattern or "").startswith(f"{s}:")]
    if dynamic and filtered:
        out.write(f"\nNames resolved on demand by the dynamic sources ({', '.join(dynamic)}) "
                  f"are not searched; `geofm describe backbone {dynamic[0]}:NAME` shows a "
                  "name's metadata\n")
    elif dynamic:
        out.write(
            f"\nDynamic sources resolve names on demand: {', '.join(dynamic)}. "
            f"List them with a pattern, e.g. geofm list backbone '{dynamic[0]}:resnet*'\n"
        )
    # Like grep: no match is exit code 1, so scripts can test for a component.
    return 0 if found else 1
