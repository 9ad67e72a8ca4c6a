"""One's own labels: points or polygons a user labelled crop (1) or non-crop (0), from field visits,
photo-interpretation or last year's parcel declarations (`areas.<name>.labels`).

They join the consensus in the training patches and win where the two disagree. A seeded share of
them (`holdout`, whole features) never trains: it chooses the checkpoint and the decision threshold
instead of the held-out consensus pixels, which are the easy ones.

Files: a CSV with `lon`, `lat` (EPSG:4326) and a class column, or any vector file OGR reads
(GeoPackage, ...) of points or polygons with a class column; the class column is `class`, or
`reference` (the column `assessment/suggested.csv` leaves to fill in). Rows whose class is empty are
skipped (a file labelled half-way); any other value than 0 or 1 is an error naming the row.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cropmap.conventions import NODATA
from cropmap.errors import DataError

__all__ = ["CLASS_COLUMNS", "OwnLabels", "read_own_labels", "rasterize_own_labels"]

CLASS_COLUMNS = ("class", "reference")


@dataclass(frozen=True)
class OwnLabels:
    """Labelled features in the area's CRS: shapely geometries, their class (0 / 1) and whether
    each is held out for validation."""

    geometries: np.ndarray  # (n,) shapely geometries
    classes: np.ndarray  # (n,) uint8
    held_out: np.ndarray  # (n,) bool

    def __len__(self) -> int:
        return len(self.classes)


def _class_of(value, where: str) -> int | None:
    text = str(value).strip() if value is not None else ""
    if text in ("", "nan", "None"):
        return None
    try:
        number = float(text)
    except ValueError:
        number = None
    if number not in (0.0, 1.0):
        raise DataError(f"{where}: class {text!r} is neither 1 (crop) nor 0 (non-crop)")
    return int(number)


def _class_column(columns, path) -> str:
    for name in CLASS_COLUMNS:
        if name in columns:
            return name
    raise DataError(f"own labels {path}: no class column (expected one of: {', '.join(CLASS_COLUMNS)}; "
                    f"found: {', '.join(map(str, columns))})")


def _read_csv(path: Path):
    import shapely

    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in ("lon", "lat") if c not in columns]
        if missing:
            raise DataError(f"own labels {path}: no {' or '.join(missing)} column (a CSV gives lon and lat in "
                            "degrees, EPSG:4326)")
        column = _class_column(columns, path)
        points, classes = [], []
        for line, row in enumerate(reader, start=2):
            label = _class_of(row[column], f"own labels {path}, line {line}")
            if label is None:
                continue
            try:
                lon, lat = float(row["lon"]), float(row["lat"])
            except ValueError:
                raise DataError(f"own labels {path}, line {line}: lon / lat {row['lon']!r}, {row['lat']!r} "
                                "are not numbers") from None
            points.append((lon, lat))
            classes.append(label)
    return shapely.points(np.array(points).reshape(-1, 2)), np.array(classes, np.uint8), "EPSG:4326"


def _read_vector(path: Path):
    import pyogrio.raw
    import shapely

    try:
        meta, _, wkb, fields = pyogrio.raw.read(path)
    except Exception as err:  # pyogrio raises its own errors for every unreadable file
        raise DataError(f"own labels {path}: cannot read it as a vector file: {err}") from None
    column = _class_column(list(meta["fields"]), path)
    values = fields[list(meta["fields"]).index(column)]
    labels = [_class_of(v, f"own labels {path}, feature {i}") for i, v in enumerate(values)]
    keep = np.array([v is not None for v in labels], bool)
    if not meta.get("crs"):
        raise DataError(f"own labels {path}: the file declares no CRS")
    return (shapely.from_wkb(np.asarray(wkb, dtype=object)[keep]),
            np.array([v for v in labels if v is not None], np.uint8), meta["crs"])


def read_own_labels(path, *, crs, holdout: float, seed: int) -> OwnLabels:
    """The labelled features of `path` in `crs` (the area's), a seeded `holdout` share of them held
    out (drawn over the whole file, so every block agrees on which)."""
    import shapely
    from pyproj import Transformer

    path = Path(path)
    if not path.exists():
        raise DataError(f"own labels {path}: no such file")
    geometries, classes, source_crs = _read_csv(path) if path.suffix.lower() == ".csv" else _read_vector(path)
    if len(classes) == 0:
        raise DataError(f"own labels {path}: no labelled feature (every class is empty)")
    to_area = Transformer.from_crs(source_crs, crs, always_xy=True)
    geometries = shapely.transform(np.asarray(geometries, dtype=object),
                                   lambda xy: np.column_stack(to_area.transform(xy[:, 0], xy[:, 1])))
    held_out = np.random.default_rng(seed).uniform(size=len(classes)) < holdout
    return OwnLabels(geometries=np.asarray(geometries, dtype=object), classes=classes, held_out=held_out)


def rasterize_own_labels(labels: OwnLabels, *, transform, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) (H, W) uint8 rasters on a grid: the class of each feature (1 crop, 0
    non-crop, 255 none); a point marks the pixel it falls in, a polygon the pixels whose centre it
    holds. Where features overlap, the later one wins."""
    from rasterio.features import rasterize

    out = []
    for held in (False, True):
        pick = labels.held_out == held
        shapes = [(g, int(c)) for g, c in zip(labels.geometries[pick], labels.classes[pick])]
        if not shapes:
            out.append(np.full(shape, NODATA, np.uint8))
            continue
        # a point rasterises to the pixel that holds it: all_touched for points only
        points = [(g, c) for g, c in shapes if g.geom_type in ("Point", "MultiPoint")]
        areas = [(g, c) for g, c in shapes if g.geom_type not in ("Point", "MultiPoint")]
        raster = np.full(shape, NODATA, np.uint8)
        for group, touched in ((areas, False), (points, True)):
            if group:
                burnt = rasterize(group, out_shape=shape, transform=transform, fill=NODATA, dtype="uint8",
                                  all_touched=touched)
                raster = np.where(burnt != NODATA, burnt, raster)
        out.append(raster)
    return out[0], out[1]
