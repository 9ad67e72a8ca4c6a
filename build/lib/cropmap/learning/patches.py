"""Training data as a sample of the area, not the area: patches drawn per block, read one at a time.

A `patches` job draws square patches from the cubes of one block of tiles (and, for training, its
consensus labels) and appends them to one chunked netCDF store per block, one chunk per patch:
- pretraining patches are centred on pixels observed at least once, as many per tile as
  `pretrain_per_tile` times the tile's observed share;
- training patches are centred on consensus-labelled pixels, `crop_share` of them on crop (None:
  as the labels come), `train_per_tile` per tile, times the tile's labelled share when
  `follow_labelled_share`.
Random draws are seeded by (seed, tile id), so a tile's patches do not depend on the rest of the
area. `pretrain` and `train` read the stores through `PatchDataset`, a patch at a time, so their
memory depends on the batch, not on the area.

Validation holds out a seeded share of whole blocks (`split_validation`); an area of one block holds
out whole tiles instead, and an area of one tile a share of its patches (with a warning).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cropmap.conventions import CROP, NODATA, NONCROP, REFLECTANCE_FILL
from cropmap.errors import DataError
from cropmap.io import atomic_path
from cropmap.labels.own_labels import OwnLabels, rasterize_own_labels, read_own_labels
from cropmap.settings import PretrainPatchSettings, TrainPatchSettings

log = logging.getLogger(__name__)

__all__ = ["PRETRAIN", "TRAIN", "BudgetSampler", "PatchDataset", "PatchStore", "SeasonBatches", "SeasonPatches", "draw_labelled_centres",
           "PatchWriter", "draw_observed_centres", "patch_origins", "split_validation", "tile_patch_count", "tile_seed",
           "write_block_patches"]

PRETRAIN, TRAIN = "pretrain", "train"


def tile_seed(seed: int, tile_id: str) -> np.random.Generator:
    """A generator that depends only on the seed and the tile, not on the other tiles of the job."""
    return np.random.default_rng([seed, zlib.crc32(tile_id.encode())])


def tile_patch_count(per_tile: int, share: float, *, follow_share: bool) -> int:
    """Patches of one tile: `per_tile`, times `share` (of eligible pixels) when `follow_share`; at
    least one where any pixel is eligible."""
    if share <= 0:
        return 0
    return max(1, round(per_tile * share)) if follow_share else per_tile


def draw_observed_centres(observed: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of `count` pixels drawn uniformly, with replacement, among the True pixels of
    `observed` (H, W)."""
    flat = np.flatnonzero(observed)
    if flat.size == 0 or count == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    return np.unravel_index(rng.choice(flat, size=count), observed.shape)


def draw_labelled_centres(labels: np.ndarray, count: int, rng: np.random.Generator, *,
                          crop_share: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, classes) of `count` consensus-labelled pixels of `labels` (H, W; 1 crop, 0
    non-crop, 255 unlabelled): `crop_share` of them crop, the rest non-crop, each drawn uniformly
    within its class; all from one class where the other is absent; with `crop_share` None,
    uniformly among labelled pixels."""
    crop, noncrop = np.flatnonzero(labels == CROP), np.flatnonzero(labels == NONCROP)
    if count == 0 or crop.size + noncrop.size == 0:
        empty = np.zeros(0, np.intp)
        return empty, empty, empty.astype(np.uint8)
    if crop_share is None:
        picks = rng.choice(np.concatenate([crop, noncrop]), size=count)
    else:
        n_crop = count if noncrop.size == 0 else 0 if crop.size == 0 else int(round(count * crop_share))
        picks = np.concatenate([rng.choice(crop, size=n_crop) if n_crop else np.zeros(0, np.intp),
                                rng.choice(noncrop, size=count - n_crop) if count - n_crop else np.zeros(0, np.intp)])
    rows, cols = np.unravel_index(picks, labels.shape)
    return rows, cols, labels[rows, cols].astype(np.uint8)


def patch_origins(rows: np.ndarray, cols: np.ndarray, *, size: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners of `size` px patches centred on (rows, cols), moved inside `shape`."""
    h, w = shape
    if size > min(h, w):
        raise DataError(f"patches of {size} px do not fit in a tile of {h} x {w} px (patches.size)")
    r0 = np.clip(np.asarray(rows) - size // 2, 0, h - size)
    c0 = np.clip(np.asarray(cols) - size // 2, 0, w - size)
    return r0.astype(np.int32), c0.astype(np.int32)


# --- the store: one netCDF file per block, one chunk per patch ----------------------------------

class PatchWriter:
    """Appends patches to a new store at `path` (a context manager; the caller makes it atomic)."""

    def __init__(self, path, *, kind: str, times: np.ndarray, bands: Sequence[str], size: int, block: str):
        import netCDF4

        if kind not in (PRETRAIN, TRAIN):
            raise ValueError(f"unknown patch kind {kind!r}")
        self.kind, self.size = kind, size
        ds = self._ds = netCDF4.Dataset(path, "w", format="NETCDF4")
        ds.setncatts({"kind": kind, "block": block, "patch_size": size, "title": f"cropmap {kind} patches of {block}"})
        ds.createDimension("patch", None)
        ds.createDimension("time", len(times))
        ds.createDimension("band", len(bands))
        ds.createDimension("y", size)
        ds.createDimension("x", size)
        t = ds.createVariable("time", "i8", ("time",))
        t.units = "days since 1970-01-01"
        t[:] = np.asarray(times, "datetime64[D]").astype(np.int64)
        b = ds.createVariable("band", str, ("band",))
        for i, name in enumerate(bands):
            b[i] = name
        nt, nb = len(times), len(bands)
        ds.createVariable("reflectance", "i2", ("patch", "time", "band", "y", "x"), zlib=True, complevel=1,
                          chunksizes=(1, nt, nb, size, size)).setncatts(
            {"long_name": "surface reflectance * 10000", "missing_value": np.int16(REFLECTANCE_FILL)})
        ds.createVariable("observed", "u1", ("patch", "time", "y", "x"), zlib=True, complevel=1,
                          chunksizes=(1, nt, size, size)).long_name = "1 where the composite holds a clear observation"
        if kind == TRAIN:
            ds.createVariable("labels", "u1", ("patch", "y", "x"), zlib=True, complevel=1,
                              chunksizes=(1, size, size)).long_name = "consensus label: 1 crop, 0 non-crop, 255 none"
            ds.createVariable("own", "u1", ("patch", "y", "x"), zlib=True, complevel=1,
                              chunksizes=(1, size, size)).long_name = "1 where the label is one's own, not the consensus"
            ds.createVariable("check", "u1", ("patch", "y", "x"), zlib=True, complevel=1, chunksizes=(1, size, size)
                              ).long_name = "held-out label of one's own (validation only): 1 crop, 0 non-crop, 255 none"
            for name in ("crop_pixels", "noncrop_pixels", "check_pixels"):
                ds.createVariable(name, "i4", ("patch",))
        ds.createVariable("tile", str, ("patch",))
        for name in ("row", "col"):
            ds.createVariable(name, "i4", ("patch",)).long_name = f"{name} of the patch's top-left pixel in its tile"

    def add(self, *, tile: str, reflectance: np.ndarray, observed: np.ndarray, labels: np.ndarray | None,
            rows: np.ndarray, cols: np.ndarray, own: np.ndarray | None = None, check: np.ndarray | None = None) -> None:
        """Append the `size` px windows at top-left corners (rows, cols) of one tile's arrays:
        reflectance (T, C, H, W) int16, observed (T, H, W) bool, labels (H, W) uint8 for training,
        with `own` (H, W) bool where they are one's own and `check` (H, W) uint8 the held-out ones."""
        if (labels is None) != (self.kind == PRETRAIN):
            raise ValueError("training patches need labels, pretraining patches take none")
        ds, size = self._ds, self.size
        start = ds.dimensions["patch"].size
        for k, (r, c) in enumerate(zip(rows, cols)):
            window = (slice(r, r + size), slice(c, c + size))
            i = start + k
            ds["reflectance"][i] = reflectance[(..., *window)]
            ds["observed"][i] = observed[(..., *window)].astype(np.uint8)
            ds["tile"][i] = tile
            if labels is not None:
                patch_labels = labels[window]
                ds["labels"][i] = patch_labels
                ds["crop_pixels"][i] = int(np.sum(patch_labels == CROP))
                ds["noncrop_pixels"][i] = int(np.sum(patch_labels == NONCROP))
                ds["own"][i] = np.zeros((size, size), np.uint8) if own is None else own[window].astype(np.uint8)
                patch_check = np.full((size, size), NODATA, np.uint8) if check is None else check[window]
                ds["check"][i] = patch_check
                ds["check_pixels"][i] = int(np.sum(patch_check != NODATA))
        ds["row"][start:start + len(rows)] = np.asarray(rows, np.int32)
        ds["col"][start:start + len(cols)] = np.asarray(cols, np.int32)

    def close(self) -> None:
        self._ds.close()

    def __enter__(self) -> PatchWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_block_patches(*, kind: str, cube_paths: Sequence[str], label_paths: Sequence[str] | None, block: str,
                        settings: PretrainPatchSettings | TrainPatchSettings, out_path,
                        own_labels_path: str | None = None) -> dict[str, int]:
    """Draw the patches of one block's tiles and write them to the block's store; returns patches per tile.

    settings: `TrainPatchSettings` for training patches. `own_labels_path`: one's own labels
    (`cropmap.labels.own_labels`), which replace the consensus where they lie, each (up to `per_tile` a
    tile) with a patch of its own; the held-out ones go to the store's `check` only.
    Memory: one tile cube at a time.
    """
    from cropmap.labels.blocks import read_window
    from cropmap.acquisition.cube import open_cube

    if kind == TRAIN and not label_paths:
        raise DataError("training patches need the block's label file")
    if not cube_paths:
        raise DataError(f"block {block}: no cube given")
    size = settings.size
    written: dict[str, int] = {}
    own = own_px = check = None
    with atomic_path(out_path) as tmp:
        writer = None
        try:
            for path in cube_paths:
                cube = open_cube(path)
                halo = int(cube.attrs.get("halo_px", 0))
                if halo:  # patches come from the tile itself; the halo is context for inference
                    cube = cube.isel(y=slice(halo, -halo), x=slice(halo, -halo))
                tile_id = str(cube.attrs.get("tile", Path(path).stem))
                observed_px = cube["never_observed"].values == 0
                rng = tile_seed(settings.seed, tile_id)
                labels = None
                if kind == PRETRAIN:
                    count = tile_patch_count(settings.per_tile, float(observed_px.mean()), follow_share=True)
                    rows, cols = draw_observed_centres(observed_px, count, rng)
                else:
                    labels = read_window(label_paths, _bounds(cube), name=tile_id)
                    labels = np.where(observed_px, labels, NODATA).astype(np.uint8)
                    count = tile_patch_count(settings.per_tile, float(np.mean(labels != NODATA)),
                                             follow_share=settings.follow_labelled_share)
                    rows, cols, _ = draw_labelled_centres(labels, count, rng, crop_share=settings.crop_share)
                    if own_labels_path:
                        if own is None:
                            own = read_own_labels(own_labels_path, crs=cube["spatial_ref"].attrs["crs_wkt"],
                                                  holdout=settings.own_holdout, seed=settings.seed)
                        labels, own_px, check, own_rows, own_cols = _with_own_labels(cube, labels, own, settings.per_tile,
                                                                                     observed_px, rng)
                        rows, cols = np.concatenate([rows, own_rows]), np.concatenate([cols, own_cols])
                if writer is None:
                    writer = PatchWriter(tmp, kind=kind, times=cube["time"].values, size=size, block=block,
                                         bands=[str(b) for b in cube["band"].values])
                r0, c0 = patch_origins(rows, cols, size=size, shape=observed_px.shape)
                writer.add(tile=tile_id, reflectance=cube["reflectance"].values,
                           observed=cube["clear_count"].values > 0, labels=labels, rows=r0, cols=c0,
                           own=own_px, check=check)
                written[tile_id] = len(r0)
        finally:
            if writer is not None:
                writer.close()
    return written


def _with_own_labels(cube, labels: np.ndarray, own: OwnLabels, per_tile: int, observed: np.ndarray,
                     rng: np.random.Generator):
    """A tile's training labels with one's own in place of the consensus (held-out ones unlabelled),
    where its own labels lie, its held-out ones, and the centres of the patches drawn on them: every
    labelled pixel of one's own, up to `per_tile` of each kind, drawn at random beyond that."""
    from affine import Affine

    xs, ys = cube["x"].values, cube["y"].values
    res_x, res_y = float(xs[1] - xs[0]), float(ys[1] - ys[0])
    transform = Affine(res_x, 0, float(xs[0]) - res_x / 2, 0, res_y, float(ys[0]) - res_y / 2)
    train_px, check = rasterize_own_labels(own, transform=transform, shape=labels.shape)
    train_px = np.where(observed, train_px, NODATA)
    check = np.where(observed, check, NODATA).astype(np.uint8)
    merged = np.where(train_px != NODATA, train_px, labels)
    merged[check != NODATA] = NODATA  # a held-out label never trains, whatever the consensus says there
    centres = []
    for raster in (train_px, check):
        flat = np.flatnonzero(raster != NODATA)
        centres.append(rng.choice(flat, size=min(per_tile, flat.size), replace=False) if flat.size else flat)
    rows, cols = np.unravel_index(np.concatenate(centres).astype(np.intp), labels.shape)
    return merged.astype(np.uint8), train_px != NODATA, check, rows, cols


def _bounds(cube) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of a cube from its pixel-centre coordinates. Not `cube.rio.bounds()`:
    the accessor it caches on the cube is a reference cycle, which keeps each ~140 MB cube alive
    until the garbage collector happens to run."""
    x, y = cube["x"].values, cube["y"].values
    dx, dy = abs(float(x[1] - x[0])), abs(float(y[1] - y[0]))
    return (float(x.min()) - dx / 2, float(y.min()) - dy / 2, float(x.max()) + dx / 2, float(y.max()) + dy / 2)


@dataclass(frozen=True)
class PatchStore:
    """What one block's store holds, read once from its small variables (not the patches)."""

    path: str
    kind: str
    block: str
    size: int
    times: np.ndarray  # (T,) datetime64[D]
    bands: tuple[str, ...]
    tiles: np.ndarray  # (n,) tile id of each patch
    class_pixels: np.ndarray | None  # (n, 2) non-crop, crop labelled pixels of each training patch
    check_pixels: np.ndarray | None = None  # (n,) held-out labels of one's own in each training patch

    @classmethod
    def open(cls, path) -> PatchStore:
        import netCDF4

        try:
            ds = netCDF4.Dataset(path)
        except OSError as err:
            raise DataError(f"cannot read the patch store {path}: {err}") from None
        with ds:
            times = np.asarray(ds["time"][:], np.int64).astype("datetime64[D]")
            class_pixels = check_pixels = None
            if "labels" in ds.variables:
                class_pixels = np.stack([np.asarray(ds["noncrop_pixels"][:]), np.asarray(ds["crop_pixels"][:])], axis=1)
                check_pixels = (np.asarray(ds["check_pixels"][:]) if "check_pixels" in ds.variables
                                else np.zeros(len(class_pixels), np.int64))
            return cls(path=str(path), kind=ds.getncattr("kind"), block=ds.getncattr("block"),
                       size=int(ds.getncattr("patch_size")), times=times, bands=tuple(ds["band"][:]),
                       tiles=np.asarray(ds["tile"][:], dtype=object), class_pixels=class_pixels,
                       check_pixels=check_pixels)

    def __len__(self) -> int:
        return len(self.tiles)


class PatchDataset:
    """Patches of several stores as one indexed, map-style dataset for a torch `DataLoader`.

    An index is (patch number, row offset, column offset): the patch's `crop` x `crop` window at that
    offset (see `BudgetSampler`); a plain int takes the centred window. Each item is a dict of numpy
    arrays: `reflectance` (T, C, crop, crop) int16, `observed` (T, crop, crop) bool and, for
    training stores, `labels` (crop, crop) int64, `own` (crop, crop) bool where the label is one's
    own and `check` (crop, crop) int64, the held-out labels of one's own. A store is opened for each
    patch read.
    """

    def __init__(self, stores: Sequence[PatchStore], *, crop: int | None = None, patches: np.ndarray | None = None):
        if not stores:
            raise DataError("no patch store given")
        self.stores = list(stores)
        first = self.stores[0]
        for store in self.stores[1:]:
            if store.bands != first.bands or not np.array_equal(store.times, first.times) or store.size != first.size:
                raise DataError(f"patch stores {first.path} and {store.path} differ in bands, dates or patch size; "
                                "rerun the patches of the area")
        self.crop = first.size if crop is None else int(crop)
        if self.crop > first.size:
            raise DataError(f"training patches of {self.crop} px are larger than the stored {first.size} px "
                            "(patch_size must not exceed patches.size)")
        if patches is None:
            patches = np.array([(s, i) for s, store in enumerate(self.stores) for i in range(len(store))], np.int64)
        self.patches = np.asarray(patches, np.int64).reshape(-1, 2)  # (store, patch in store) pairs

    @property
    def times(self) -> np.ndarray:
        return self.stores[0].times

    @property
    def bands(self) -> list[str]:
        return list(self.stores[0].bands)

    @property
    def size(self) -> int:
        return self.stores[0].size

    def __len__(self) -> int:
        return len(self.patches)

    def subset(self, positions: np.ndarray) -> PatchDataset:
        """The dataset of the patches at `positions` (indices into this one)."""
        return PatchDataset(self.stores, crop=self.crop, patches=self.patches[np.asarray(positions, np.intp)])

    def tile_of(self, position: int) -> str:
        s, i = self.patches[position]
        return str(self.stores[s].tiles[i])

    def block_of(self, position: int) -> str:
        return self.stores[self.patches[position][0]].block

    def with_check(self) -> np.ndarray:
        """Positions of the patches that hold held-out labels of one's own."""
        return np.flatnonzero([self.stores[s].check_pixels[i] > 0 for s, i in self.patches])

    def class_pixels(self) -> np.ndarray:
        """(2,) labelled non-crop and crop pixels of all patches (full stored windows)."""
        counts = np.zeros(2, np.int64)
        for s in np.unique(self.patches[:, 0]):
            counts += self.stores[s].class_pixels[self.patches[self.patches[:, 0] == s, 1]].sum(axis=0)
        return counts

    def __getitem__(self, key) -> dict[str, np.ndarray]:
        import netCDF4

        if isinstance(key, (tuple, list)):
            position, dy, dx = (int(v) for v in key)
        else:
            position = int(key)
            dy = dx = (self.size - self.crop) // 2
        s, i = self.patches[position]
        window = (slice(dy, dy + self.crop), slice(dx, dx + self.crop))
        # opened and closed for each patch (3 ms instead of 1.6): a handle left to the garbage
        # collector is closed by whichever thread collects it, while another thread may be in
        # HDF5, which the wheels do not build thread-safe (it crashed); no handle crosses a fork either
        with netCDF4.Dataset(self.stores[s].path) as ds:
            ds.set_auto_mask(False)
            item = {"reflectance": np.asarray(ds["reflectance"][i][(..., *window)]),
                    "observed": np.asarray(ds["observed"][i][(..., *window)]).astype(bool)}
            if "labels" in ds.variables:
                item["labels"] = np.asarray(ds["labels"][i][window]).astype(np.int64)
                # stores written before one's own labels existed hold none
                item["own"] = (np.asarray(ds["own"][i][window]).astype(bool) if "own" in ds.variables
                               else np.zeros(item["labels"].shape, bool))
                item["check"] = (np.asarray(ds["check"][i][window]).astype(np.int64) if "check" in ds.variables
                                 else np.full(item["labels"].shape, NODATA, np.int64))
        return item


class BudgetSampler:
    """`draws` indices (patch, row offset, column offset), drawn with replacement from a seeded
    generator: a fixed budget of samples whatever the size of the area; offsets pick a random
    `crop` window of each stored patch (augmentation when the stored patches are larger)."""

    def __init__(self, n: int, draws: int, *, max_offset: int, seed: int):
        self.n, self.draws, self.max_offset, self.seed = n, draws, max_offset, seed

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        rng = np.random.default_rng(self.seed)
        positions = rng.integers(0, self.n, self.draws)
        offsets = rng.integers(0, self.max_offset + 1, (self.draws, 2))
        for p, (dy, dx) in zip(positions, offsets):
            yield int(p), int(dy), int(dx)

    def __len__(self) -> int:
        return self.draws


class SeasonPatches:
    """The patches of several areas or seasons as one map-style dataset: a list of `PatchDataset`s
    (each with its own dates, e.g. another year) whose items carry `group`, the dataset they come
    from. An index is (group, patch number, row offset, column offset), or a plain int counting
    through the groups in order. The bands and the crop must be the same in all groups."""

    def __init__(self, groups: Sequence[PatchDataset]):
        self.groups = list(groups)
        first = self.groups[0]
        for group in self.groups[1:]:
            if group.bands != first.bands:
                raise DataError(f"patch stores {first.stores[0].path} and {group.stores[0].path} have different "
                                f"bands ({', '.join(first.bands)} / {', '.join(group.bands)})")
            if group.crop != first.crop:
                raise DataError(f"patch stores {first.stores[0].path} and {group.stores[0].path} give patches "
                                f"of {first.crop} and {group.crop} px")
        self.starts = np.cumsum([0, *map(len, self.groups)])
        self.crop = first.crop

    @property
    def bands(self) -> list[str]:
        return self.groups[0].bands

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, key) -> dict[str, np.ndarray]:
        if isinstance(key, (tuple, list)):
            group, *index = (int(v) for v in key)
        else:
            group = int(np.searchsorted(self.starts, int(key), side="right") - 1)
            index = int(key) - int(self.starts[group])
        return {**self.groups[group][index], "group": np.int64(group)}


class SeasonBatches:
    """`steps` batches of `batch_size` indices of a `SeasonPatches`, each batch from one group (their
    dates differ, so a batch cannot mix them): the group drawn in proportion to its patches, then
    its patches and their offsets drawn with replacement, as `BudgetSampler` does."""

    def __init__(self, dataset: SeasonPatches, *, steps: int, batch_size: int, seed: int):
        self.dataset, self.steps, self.batch_size, self.seed = dataset, steps, batch_size, seed

    def __iter__(self) -> Iterator[list[tuple[int, int, int, int]]]:
        sizes = np.diff(self.dataset.starts)
        if len(sizes) == 1:  # one season: `BudgetSampler`'s draws, so an area pretrained alone keeps its batches
            only = self.dataset.groups[0]
            draws = iter(BudgetSampler(len(only), self.steps * self.batch_size, max_offset=only.size - only.crop,
                                       seed=self.seed))
            for _ in range(self.steps):
                yield [(0, *next(draws)) for _ in range(self.batch_size)]
            return
        rng = np.random.default_rng(self.seed)
        for group in rng.choice(len(sizes), size=self.steps, p=sizes / sizes.sum()):
            patches = self.dataset.groups[group]
            positions = rng.integers(0, len(patches), self.batch_size)
            offsets = rng.integers(0, patches.size - patches.crop + 1, (self.batch_size, 2))
            yield [(int(group), int(p), int(dy), int(dx)) for p, (dy, dx) in zip(positions, offsets)]

    def __len__(self) -> int:
        return self.steps


def split_validation(dataset: PatchDataset, *, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(training positions, validation positions, unit) of `dataset`: a seeded `fraction` of whole
    blocks held out (at least one, at most all but one); with fewer than 1 / `fraction` blocks,
    whole tiles; with one tile, patches. The held-out positions never feed training."""
    rng = np.random.default_rng(seed)
    n = len(dataset)
    if fraction <= 0 or n < 2:
        return np.arange(n), np.zeros(0, np.intp), "none"
    for unit, key in (("block", dataset.block_of), ("tile", dataset.tile_of)):
        units = np.array([key(p) for p in range(n)], dtype=object)
        names = sorted(set(units))
        # too few blocks to hold out about `fraction` of them (one of two is half the area): tiles
        if len(names) >= 2 and (unit == "tile" or fraction * len(names) >= 1):
            count = min(max(1, round(fraction * len(names))), len(names) - 1)
            held = set(rng.choice(names, size=count, replace=False).tolist())
            is_val = np.array([u in held for u in units])
            return np.flatnonzero(~is_val), np.flatnonzero(is_val), unit
    log.warning("the area has a single tile: validation holds out %.0f %% of its patches, which overlap the "
                "training patches in space", 100 * fraction)
    perm = rng.permutation(n)
    count = min(max(1, round(fraction * n)), n - 1)
    return np.sort(perm[count:]), np.sort(perm[:count]), "patch"
