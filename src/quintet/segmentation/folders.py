"""Readers for the paper's benchmarks in their usual directory layouts, mapped to the 19
Cityscapes training classes (255 = ignore), so users who have the data run the full protocol
(GTAV + SYNTHIA -> Cityscapes, BDD100K, Mapillary; Kim et al. 2022, Sec. 4.1).

Layouts (``root`` is each data set's folder; the authors' layouts):

* GTAV: ``images/{split}/<folder>/*.png`` and ``labels/{split}/<folder>/*.png`` (Cityscapes label ids;
  split ``val`` also found as ``valid``, the authors' name)
* SYNTHIA (RAND-CITYSCAPES): ``RGB/{split}/*.png`` and ``GT/LABELS/{split}/*.png`` (class id in the
  first channel; 8-bit or single-channel 16-bit PNGs; the 16-bit three-channel PNGs SYNTHIA ships
  are refused, because Pillow keeps only their high byte: convert them to single channel first)
* Cityscapes: ``leftImg8bit/{split}/<city>/*_leftImg8bit.png`` and
  ``gtFine/{split}/<city>/*_gtFine_labelIds.png`` (also under ``leftImg8bit_trainvaltest/`` and
  ``gtFine_trainvaltest/``)
* BDD100K: ``images/{split}/*.jpg`` and ``labels/{split}/*_train_id.png`` (already train ids)
* Mapillary Vistas v1.x: ``{training,validation}/images/*.jpg`` and ``.../labels/*.png`` (66 ids)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from quintet.core.errors import QuintetError
from quintet.segmentation.data import Domain
from quintet.segmentation.losses import IGNORE_INDEX

CITYSCAPES_CLASSES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                      "motorcycle", "bicycle"]

# Cityscapes label id -> train id (cityscapesScripts' labels.py); GTAV labels use the same ids.
_CS_ID_TO_TRAIN = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                   26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
# SYNTHIA-RAND-CITYSCAPES class id -> train id (lane marking counted as road).
_SYNTHIA_TO_TRAIN = {1: 10, 2: 2, 3: 0, 4: 1, 5: 4, 6: 8, 7: 5, 8: 13, 9: 7, 10: 11, 11: 18, 12: 17, 15: 6, 16: 9,
                     17: 12, 18: 14, 19: 15, 20: 16, 21: 3, 22: 0}
# Mapillary Vistas v1.2 (66 classes) -> train id, the usual grouping (markings/crosswalks as road,
# curbs as sidewalk, all riders as rider).
_MAPILLARY_TO_TRAIN = {7: 0, 8: 0, 13: 0, 14: 0, 23: 0, 24: 0, 2: 1, 9: 1, 15: 1, 17: 2, 6: 3, 3: 4, 45: 5, 47: 5,
                       48: 6, 50: 7, 30: 8, 29: 9, 27: 10, 19: 11, 20: 12, 21: 12, 22: 12, 55: 13, 61: 14, 54: 15,
                       58: 16, 57: 17, 52: 18}


def lookup_table(mapping: dict[int, int], size: int = 65536) -> np.ndarray:
    """A ``uint8`` array mapping every raw id to its train id (255 where unmapped)."""
    table = np.full(size, IGNORE_INDEX, dtype=np.uint8)
    for raw, train in mapping.items():
        table[raw] = train
    return table


IDENTITY_19 = {i: i for i in range(19)}


@dataclass(frozen=True)
class FolderSpec:
    """How to find (image, label) pairs of one data set and map its label ids."""

    name: str
    pairs: Callable[[Path, str], list[tuple[Path, Path]]]
    mapping: dict[int, int]


def _need_dir(path: Path, dataset: str) -> Path:
    if not path.is_dir():
        raise QuintetError(f"{dataset}: folder {path} not found (see quintet.segmentation.folders for the layout)")
    return path


def _match(images: list[Path], label_dir: Path, to_label: Callable[[Path], str], dataset: str) -> list[tuple[Path, Path]]:
    pairs = []
    for img in images:
        lab = label_dir / to_label(img)
        if not lab.is_file():
            raise QuintetError(f"{dataset}: no label file {lab} for image {img}")
        pairs.append((img, lab))
    if not pairs:
        raise QuintetError(f"{dataset}: no images found")
    return pairs


def gtav_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    if split == "val" and not (root / "images" / split).is_dir():
        split = "valid"  # the authors' GTAV layout names its validation folder "valid"
    img_dir = _need_dir(root / "images" / split, "GTAV")
    lab_dir = _need_dir(root / "labels" / split, "GTAV")
    images = sorted(img_dir.rglob("*.png"))
    return _match(images, lab_dir, lambda p: str(p.relative_to(img_dir)), "GTAV")


def synthia_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    img_dir = _need_dir(root / "RGB" / split, "SYNTHIA")
    lab_dir = _need_dir(root / "GT" / "LABELS" / split, "SYNTHIA")
    return _match(sorted(img_dir.glob("*.png")), lab_dir, lambda p: p.name, "SYNTHIA")


def cityscapes_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    img_base = root / "leftImg8bit" if (root / "leftImg8bit").is_dir() else root / "leftImg8bit_trainvaltest" / "leftImg8bit"
    lab_base = root / "gtFine" if (root / "gtFine").is_dir() else root / "gtFine_trainvaltest" / "gtFine"
    img_dir = _need_dir(img_base / split, "Cityscapes")
    lab_dir = _need_dir(lab_base / split, "Cityscapes")
    images = sorted(img_dir.rglob("*_leftImg8bit.png"))
    return _match(images, lab_dir,
                  lambda p: str(p.relative_to(img_dir)).replace("_leftImg8bit.png", "_gtFine_labelIds.png"), "Cityscapes")


def bdd100k_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    img_dir = _need_dir(root / "images" / split, "BDD100K")
    lab_dir = _need_dir(root / "labels" / split, "BDD100K")
    return _match(sorted(img_dir.glob("*.jpg")), lab_dir, lambda p: p.stem + "_train_id.png", "BDD100K")


def mapillary_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    folder = {"train": "training", "val": "validation"}.get(split, split)
    img_dir = _need_dir(root / folder / "images", "Mapillary")
    lab_dir = _need_dir(root / folder / "labels", "Mapillary")
    return _match(sorted(img_dir.glob("*.jpg")), lab_dir, lambda p: p.stem + ".png", "Mapillary")


FOLDERS: dict[str, FolderSpec] = {
    "gtav": FolderSpec("gtav", gtav_pairs, _CS_ID_TO_TRAIN),
    "synthia": FolderSpec("synthia", synthia_pairs, _SYNTHIA_TO_TRAIN),
    "cityscapes": FolderSpec("cityscapes", cityscapes_pairs, _CS_ID_TO_TRAIN),
    "bdd100k": FolderSpec("bdd100k", bdd100k_pairs, IDENTITY_19),
    "mapillary": FolderSpec("mapillary", mapillary_pairs, _MAPILLARY_TO_TRAIN),
}


def read_image(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """An RGB image as ``uint8 (H, W, 3)``, optionally resized to ``size=(H, W)`` (bilinear).

    Raises :class:`QuintetError` for a missing/unreadable file or an image that is not RGB
    (grey-scale, RGBA and palette images are refused rather than guessed)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode != "RGB":
                raise QuintetError(f"{path}: expected an RGB image with 3 channels, got mode {im.mode!r} "
                                   f"({len(im.getbands())} band(s)); convert it to RGB first")
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8).copy()
    except FileNotFoundError as exc:
        raise QuintetError(f"image file {path} not found") from exc
    except UnidentifiedImageError as exc:
        raise QuintetError(f"{path} is not an image file PIL can read") from exc


def _check_label_depth(path: str | os.PathLike) -> None:
    """Refuse a 16-bit multi-channel PNG (PNG header: bit depth 16, colour type 2 or 6): Pillow
    reduces it to 8 bits per channel (the high byte), so small class ids would all read as 0."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and head[24] == 16 and head[25] in (2, 6):
        raise QuintetError(f"label file {path} is a 16-bit {'RGB' if head[25] == 2 else 'RGBA'} PNG, which Pillow "
                           "reads as 8 bits per channel (dropping the class ids); convert it to a single-channel "
                           "PNG holding the first channel (SYNTHIA's class id) first")


def read_label(path: str | os.PathLike, table: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """A label map as ``uint8 (H, W)`` train ids via ``table``; first channel of RGB labels;
    resized with nearest neighbour.  16-bit multi-channel PNGs are refused (see
    :func:`_check_label_depth`)."""
    from PIL import Image

    try:
        _check_label_depth(path)
        with Image.open(path) as im:
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.NEAREST)
            raw = np.asarray(im)
    except FileNotFoundError as exc:
        raise QuintetError(f"label file {path} not found") from exc
    if raw.ndim == 3:
        raw = raw[..., 0]
    return table[raw.astype(np.int64)]


def load_folder(dataset: str, root: str | os.PathLike, split: str = "train", size: tuple[int, int] | None = (90, 120),
                limit: int | None = None) -> Domain:
    """Read (up to ``limit``) image/label pairs of ``dataset`` (one of :data:`FOLDERS`) at ``size``
    into a :class:`Domain` with 19-class train ids."""
    if dataset not in FOLDERS:
        raise QuintetError(f"unknown data set {dataset!r}; expected one of: {', '.join(FOLDERS)}")
    spec = FOLDERS[dataset]
    pairs = spec.pairs(Path(root), split)[:limit]
    table = lookup_table(spec.mapping)
    images = np.stack([read_image(i, size) for i, _ in pairs])
    labels = np.stack([read_label(lab, table, size) for _, lab in pairs])
    if images.shape[:3] != labels.shape:
        raise QuintetError(f"{dataset}: image sizes {images.shape[1:3]} and label sizes {labels.shape[1:]} differ; "
                           "pass size=(H, W) to resize both")
    return Domain(dataset, images, labels, np.array([str(i.name) for i, _ in pairs]))


__all__ = ["CITYSCAPES_CLASSES", "FOLDERS", "FolderSpec", "load_folder", "lookup_table", "read_image", "read_label"]
