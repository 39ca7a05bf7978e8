"""Finding files and pairing images with labels by name (no torch here).

A pattern such as ``*_S2Hand.tif`` has fixed parts (``_S2Hand.tif``) and wildcards; the
text the wildcards matched is the file's *key*. ``Spain_1_S2Hand.tif`` has the key
``Spain_1``, and so does ``Spain_1_LabelHand.tif`` under ``*_LabelHand.tif``: they pair.
Patterns are matched against the path relative to the data root, so ``**/*.tif`` or
``images/*_img.tif`` work too.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from geofm_core.errors import ConfigurationError

__all__ = [
    "find_files",
    "load_band_values",
    "pair_by_key",
    "pattern_regex",
    "read_classification_csv",
    "read_split",
]

_MAX_LISTED = 10


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """Regex that matches a relative POSIX path against a glob and captures its wildcards."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:(.*)/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append("(.*)")
            i += 2
        elif c == "*":
            out.append("([^/]*)")
            i += 1
        elif c == "?":
            out.append("([^/])")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                out.append(re.escape(c))
                i += 1
                continue
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append(f"([{body}])")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def file_key(relative: str, regex: re.Pattern[str]) -> str:
    """The part of ``relative`` matched by the pattern's wildcards (joined by ``*``)."""
    match = regex.match(relative)
    if match is None:
        return Path(relative).stem
    groups = [g for g in match.groups() if g]
    return "*".join(groups) if groups else Path(relative).stem


def find_files(root: str | Path, pattern: str, field: str) -> dict[str, Path]:
    """Files under ``root`` matching ``pattern``, keyed by what the wildcards matched.

    Raises:
        ConfigurationError: ``root`` is missing or not a folder, nothing matches, or two files
            have the same key.
    """
    base = Path(root).expanduser()
    if not base.is_dir():
        what = "does not exist" if not base.exists() else "is not a folder"
        raise ConfigurationError(f"{field}: {str(base)!r} {what}; point it at a folder of GeoTIFFs")
    regex = pattern_regex(pattern)
    found: dict[str, Path] = {}
    for path in sorted(base.glob(pattern)):
        if not path.is_file():
            continue
        rel = path.relative_to(base).as_posix()
        key = file_key(rel, regex)
        if key in found:
            raise ConfigurationError(
                f"{field}: {found[key].name} and {path.name} have the same key {key!r} under "
                f"pattern {pattern!r}; make the pattern specific enough that each file has its "
                "own name part"
            )
        found[key] = path
    if not found:
        present = sorted(p.name for p in base.iterdir())[:5]
        hint = f" (it holds e.g. {', '.join(present)})" if present else " (it is empty)"
        raise ConfigurationError(
            f"{field}: no file in {str(base)!r} matches pattern {pattern!r}{hint}; fix the "
            "folder or the pattern"
        )
    return found


def read_split(path: str | Path, field: str) -> list[str]:
    """Ids listed in a split file: one per line; blank lines and ``#`` comments ignored."""
    split = Path(path).expanduser()
    try:
        text = split.read_text()
    except OSError as exc:
        raise ConfigurationError(f"{field}: cannot read split file {str(split)!r}: {exc}") from exc
    ids = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    ids = [i for i in ids if i]
    if not ids:
        raise ConfigurationError(f"{field}: split file {str(split)!r} lists no ids")
    return ids


def _id_variants(key: str, path: Path) -> Iterable[str]:
    yield key
    yield path.name
    yield path.stem


def select_split(files: dict[str, Path], ids: Sequence[str], split_file: str) -> dict[str, Path]:
    """Keep the files whose key, file name or stem is listed; a missing id is an error."""
    lookup: dict[str, str] = {}
    for key, path in files.items():
        for variant in _id_variants(key, path):
            lookup.setdefault(variant, key)
    missing = [i for i in ids if i not in lookup]
    if missing:
        raise ConfigurationError(
            f"split file {split_file!r} lists ids with no matching image: {_listing(missing)}; "
            f"ids are the file keys (e.g. {next(iter(files))!r}) or file names"
        )
    return {lookup[i]: files[lookup[i]] for i in dict.fromkeys(ids)}


def pair_by_key(
    images: dict[str, Path], labels: dict[str, Path], *, labels_may_exceed: bool = False
) -> list[tuple[str, Path, Path]]:
    """Pair images and labels with the same key; any unpaired file is an error naming it."""
    lonely_images = [images[k].name for k in images if k not in labels]
    lonely_labels = [] if labels_may_exceed else [labels[k].name for k in labels if k not in images]
    if lonely_images or lonely_labels:
        parts = []
        if lonely_images:
            parts.append(f"images without a label: {_listing(lonely_images)}")
        if lonely_labels:
            parts.append(f"labels without an image: {_listing(lonely_labels)}")
        raise ConfigurationError(
            "images and labels are paired by the part of the name the patterns' wildcards "
            f"match; {'; '.join(parts)}. Add or remove those files, fix img_pattern / "
            "label_pattern, or list the ids to use in a split file"
        )
    return [(key, images[key], labels[key]) for key in images]


def load_band_values(value: Sequence[float] | str | None, field: str) -> list[float] | None:
    """Means or stds given inline or as a file.

    A file holds a YAML/JSON list, a mapping with a ``means`` / ``stds`` entry (such as
    the snippet ``geofm stats`` prints), or numbers separated by spaces, commas or newlines.
    """
    if value is None:
        return None
    if isinstance(value, str):
        path = Path(value).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigurationError(f"{field}: cannot read {str(path)!r}: {exc}") from exc
        import yaml

        from geofm_core.io.yaml_files import load_yaml

        try:
            loaded = load_yaml(text, f"{field}: {path}")  # YAML is a superset of JSON
        except yaml.YAMLError:
            loaded = None
        if isinstance(loaded, dict):
            key = field.rsplit("_", 1)[-1]
            if key not in loaded:
                raise ConfigurationError(
                    f"{field}: {str(path)!r} holds a mapping without a {key!r} entry"
                )
            loaded = loaded[key]
        elif not isinstance(loaded, list):
            loaded = [t for t in re.split(r"[\s,]+", text) if t]
        value = loaded
    try:
        numbers = [float(v) for v in value]  # type: ignore[union-attr]
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{field}: expected a list of numbers, got {value!r}") from exc
    if not numbers:
        raise ConfigurationError(f"{field}: is empty; give one value per selected band")
    return numbers


def read_classification_csv(
    path: str | Path, field: str
) -> tuple[list[str], list[list[str]]]:
    """Read a label CSV: a header row, then ``file,label`` rows.

    Returns the header and the rows (each ``[file, label, ...]``).
    """
    csv_path = Path(path).expanduser()
    try:
        with csv_path.open(newline="") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except OSError as exc:
        raise ConfigurationError(f"{field}: cannot read {str(csv_path)!r}: {exc}") from exc
    if len(rows) < 2 or len(rows[0]) < 2:
        raise ConfigurationError(
            f"{field}: {str(csv_path)!r} needs a header row and at least one 'file,label' row"
        )
    header = [c.strip() for c in rows[0]]
    body = [[c.strip() for c in r] for r in rows[1:]]
    for n, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ConfigurationError(
                f"{field}: {str(csv_path)!r} line {n} has {len(row)} columns, the header "
                f"{len(header)}"
            )
    return header, body
