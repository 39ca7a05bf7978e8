"""Image chips with labels per chip: scene classification and multi-label classification.

Items add ``"label"`` to the image item: classification long scalar, multi-label float
(num_classes,). Labels come from class folders or a CSV file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from geofm_core.data.files import find_files, read_classification_csv, read_split, select_split
from geofm_core.data.images import GeoTiffImageDataset, Sample
from geofm_core.errors import ConfigurationError

__all__ = ["GeoTiffClassificationDataset", "GeoTiffMultiLabelDataset"]


def _class_index(value: str, class_names: Sequence[str] | None, where: str) -> int:
    text = value.strip()
    if class_names is not None and text in class_names:
        return list(class_names).index(text)
    try:
        return int(text)
    except ValueError:
        choices = f"; class_names are {', '.join(class_names)}" if class_names else (
            "; give class_names to use names, or integer class indices"
        )
        raise ConfigurationError(f"{where}: unknown class {text!r}{choices}") from None


class _LabelledImages(GeoTiffImageDataset):
    """Image chips with one label per chip, from a CSV or from class folders."""

    def __init__(
        self,
        data_root: str | Path,
        label_data_root: str | Path | None = None,
        *,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.label_file = None if label_data_root is None else Path(label_data_root)
        self.class_names: list[str] | None = None if class_names is None else list(class_names)
        if num_classes is None and self.class_names is not None:
            num_classes = len(self.class_names)
        if (
            num_classes is not None and self.class_names is not None
            and num_classes != len(self.class_names)
        ):
            raise ConfigurationError(
                f"num_classes is {num_classes} but class_names lists {len(self.class_names)}"
            )
        self.num_classes = num_classes
        super().__init__(data_root, **kwargs)

    def _csv_rows(self) -> tuple[list[str], dict[str, list[str]], dict[str, Path]]:
        assert self.label_file is not None
        if not self.label_file.is_file():
            raise ConfigurationError(
                f"label_data_root: {str(self.label_file)!r} is not a file; for chip labels give "
                "a CSV with a header row and 'file,label' rows"
            )
        header, rows = read_classification_csv(self.label_file, "label_data_root")
        images = find_files(self.data_root, self.img_pattern, "data_root/img_pattern")
        lookup: dict[str, str] = {}
        for key, path in images.items():
            lookup.setdefault(key, key)
            lookup.setdefault(path.name, key)
            lookup.setdefault(path.stem, key)
            lookup.setdefault(path.relative_to(self.data_root).as_posix(), key)
        labelled: dict[str, list[str]] = {}
        unknown: list[str] = []
        for row in rows:
            found = lookup.get(row[0], lookup.get(Path(row[0]).name))
            if found is None:
                unknown.append(row[0])
            else:
                labelled[found] = row[1:]
        if unknown:
            raise ConfigurationError(
                f"{self.label_file}: rows name files not found in {str(self.data_root)!r} with "
                f"img_pattern {self.img_pattern!r}: {', '.join(unknown[:10])}"
            )
        if self.split is not None:
            images = select_split(images, read_split(self.split, "split"), self.split)
        missing = [images[k].name for k in images if k not in labelled]
        if missing:
            raise ConfigurationError(
                f"images without a row in {self.label_file}: {', '.join(missing[:10])}"
                f"{' ...' if len(missing) > 10 else ''}; add them to the CSV, remove them, or "
                "use a split file"
            )
        return header, labelled, images

    def _check_index(self, index: int, where: str) -> int:
        if index < 0 or (self.num_classes is not None and index >= self.num_classes):
            raise ConfigurationError(
                f"{where}: class index {index} is outside 0..{(self.num_classes or 0) - 1} "
                f"(num_classes={self.num_classes}); fix the label or num_classes"
            )
        return index

    def _describe_label(self, value: Any) -> str:
        if isinstance(value, torch.Tensor):
            value = value.tolist()
        if self.class_names is None:
            return str(value)
        if isinstance(value, list):
            return ", ".join(n for n, v in zip(self.class_names, value, strict=False) if v > 0.5)
        return self.class_names[int(value)] if 0 <= int(value) < len(self.class_names) else (
            str(value)
        )


class GeoTiffClassificationDataset(_LabelledImages):
    """Image chips with one class each: from class folders or a CSV.

    Without ``label_data_root`` the images lie in one folder per class,
    ``data_root/<class name>/<img_pattern>``; class names are ``class_names`` or the sorted
    folder names. With ``label_data_root`` pointing at a CSV file (header row, then
    ``file,label`` rows; the label a class index or a name from ``class_names``), images are
    found in ``data_root`` with ``img_pattern`` and matched to rows by key, name or stem.
    """

    task: ClassVar[str] = "classification"

    def _collect(self) -> list[tuple[str, Path, Any]]:
        if self.label_file is not None:
            _, labelled, images = self._csv_rows()
            return [
                (key, path, self._check_index(
                    _class_index(labelled[key][0], self.class_names, f"{self.label_file} "
                                 f"({path.name})"), f"{self.label_file} ({path.name})"))
                for key, path in images.items()
            ]
        root = self.data_root
        if not root.is_dir():
            raise ConfigurationError(
                f"data_root: {str(root)!r} is not a folder of class folders"
            )
        folders = sorted(p.name for p in root.iterdir() if p.is_dir())
        if self.class_names is None:
            self.class_names = folders
            if self.num_classes is None:
                self.num_classes = len(folders)
        unknown = [f for f in folders if f not in self.class_names]
        if unknown:
            raise ConfigurationError(
                f"data_root: folders {', '.join(unknown)} in {str(root)!r} are not in "
                f"class_names ({', '.join(self.class_names)}); add them or move them out"
            )
        items: list[tuple[str, Path, Any]] = []
        for index, name in enumerate(self.class_names):
            if not (root / name).is_dir():
                continue
            files = find_files(root / name, self.img_pattern, f"data_root/{name}")
            items += [(f"{name}/{key}", path, index) for key, path in files.items()]
        if not items:
            raise ConfigurationError(
                f"data_root: no class folder in {str(root)!r} holds files matching "
                f"{self.img_pattern!r}"
            )
        if self.split is not None:
            by_key = {key: (key, path, label) for key, path, label in items}
            ids = read_split(self.split, "split")
            chosen = select_split({k: v[1] for k, v in by_key.items()}, ids, self.split)
            items = [by_key[k] for k in chosen]
        self._check_index(max(i[2] for i in items), str(root))
        return items

    def __getitem__(self, index: int) -> Sample:
        sample = super().__getitem__(index)
        sample["label"] = torch.tensor(self.items[index][2], dtype=torch.long)
        return sample


class GeoTiffMultiLabelDataset(_LabelledImages):
    """Image chips with any number of classes each, from a CSV (``label_data_root``).

    The CSV has a header row and either one 0/1 column per class (``file,cls_a,cls_b,...``;
    class names default to the header) or one column of labels separated by ``;`` or spaces
    (``file,labels`` with rows like ``a.tif,0;3`` or ``a.tif,water;forest``).
    """

    task: ClassVar[str] = "multilabel"

    def _collect(self) -> list[tuple[str, Path, Any]]:
        if self.label_file is None:
            raise ConfigurationError(
                "multi-label data need label_data_root: a CSV with a header and 'file,labels' "
                "rows (labels separated by ';') or one 0/1 column per class"
            )
        header, labelled, images = self._csv_rows()
        one_hot = len(header) > 2
        if one_hot:
            if self.class_names is None:
                self.class_names = header[1:]
            if len(self.class_names) != len(header) - 1:
                raise ConfigurationError(
                    f"{self.label_file}: has {len(header) - 1} class columns but class_names "
                    f"lists {len(self.class_names)}"
                )
            self.num_classes = len(header) - 1
        if self.num_classes is None:
            raise ConfigurationError(
                f"{self.label_file}: a 'file,labels' CSV needs num_classes or class_names"
            )
        items: list[tuple[str, Path, Any]] = []
        for key, path in images.items():
            where = f"{self.label_file} ({path.name})"
            target = np.zeros(self.num_classes, dtype=np.float32)
            if one_hot:
                try:
                    target[:] = [float(v) for v in labelled[key]]
                except ValueError:
                    raise ConfigurationError(
                        f"{where}: class columns must hold 0 or 1, got {labelled[key]}"
                    ) from None
            else:
                for token in labelled[key][0].replace(";", " ").split():
                    target[self._check_index(_class_index(token, self.class_names, where),
                                             where)] = 1.0
            items.append((key, path, target))
        return items

    def __getitem__(self, index: int) -> Sample:
        sample = super().__getitem__(index)
        sample["label"] = torch.from_numpy(self.items[index][2].copy())
        return sample
