"""Training data as a sample: patches drawn from observed or labelled pixels, stored per block,
read back a patch at a time, with whole blocks held out for validation."""

import numpy as np
import pytest
import rasterio
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cropmap.grid import AreaGrid, Tile
from cropmap.io import write_geotiff
from cropmap.learning.patches import (BudgetSampler, PatchDataset, PatchStore, draw_labelled_centres, draw_observed_centres,
                             patch_origins, split_validation, write_block_patches)
from cropmap.acquisition.cube import open_cube, write_cube
from cropmap.settings import (ModelSettings, PretrainPatchSettings, PretrainSettings, TrainPatchSettings,
                              TrainSettings)

BANDS = ["B02", "B03", "B04", "B08"]
TIMES = np.array(["2023-04-05", "2023-05-05", "2023-06-04", "2023-07-04", "2023-08-03"], "datetime64[ns]")
PRETRAIN = PretrainPatchSettings(size=16, per_tile=12, seed=0)
TRAIN = TrainPatchSettings(size=16, per_tile=20, seed=0, follow_labelled_share=False, crop_share=0.25,
                           own_holdout=0.0)


@settings(max_examples=50, deadline=None)
@given(observed=arrays(bool, (12, 9)), count=st.integers(0, 40), seed=st.integers(0, 2**16))
def test_pretraining_centres_are_observed_pixels(observed, count, seed):
    rows, cols = draw_observed_centres(observed, count, np.random.default_rng(seed))
    assert len(rows) == (count if observed.any() else 0)
    assert observed[rows, cols].all()


@settings(max_examples=50, deadline=None)
@given(labels=arrays(np.uint8, (10, 11), elements=st.sampled_from([0, 1, 255])), count=st.integers(0, 40),
       share=st.sampled_from([0.0, 0.25, 0.5, 1.0]), seed=st.integers(0, 2**16))
def test_training_centres_are_labelled_with_the_requested_class_balance(labels, count, share, seed):
    rows, cols, classes = draw_labelled_centres(labels, count, np.random.default_rng(seed), crop_share=share)
    has_crop, has_noncrop = (labels == 1).any(), (labels == 0).any()
    assert len(rows) == (count if has_crop or has_noncrop else 0)
    assert (labels[rows, cols] != 255).all() and (labels[rows, cols] == classes).all()
    if has_crop and has_noncrop:
        assert np.sum(classes == 1) == round(count * share)
    elif len(rows):
        assert (classes == (1 if has_crop else 0)).all()


@settings(max_examples=60, deadline=None)
@given(h=st.integers(8, 40), w=st.integers(8, 40), size=st.integers(1, 8), data=st.data())
def test_patch_windows_hold_their_centre_and_stay_inside(h, w, size, data):
    r = data.draw(st.integers(0, h - 1))
    c = data.draw(st.integers(0, w - 1))
    r0, c0 = patch_origins(np.array([r]), np.array([c]), size=size, shape=(h, w))
    assert 0 <= r0[0] <= h - size and 0 <= c0[0] <= w - size
    assert r0[0] <= r < r0[0] + size and c0[0] <= c < c0[0] + size


def _tile_cube(tile: Tile, seed: int, *, observed_cols: int) -> xr.Dataset:
    """A cube as `build_tile_cube` writes it, observed only in its first `observed_cols` columns."""
    rng = np.random.default_rng(seed)
    t, h, w = len(TIMES), tile.size, tile.size
    refl = rng.integers(100, 4000, (t, len(BANDS), h, w)).astype(np.int16)
    clear = rng.integers(0, 3, (t, h, w)).astype(np.uint8)
    never = np.zeros((h, w), np.uint8)
    never[:, observed_cols:] = 1
    refl[:, :, never == 1] = -9999
    clear[:, never == 1] = 0
    xs = tile.bounds[0] + tile.resolution * (np.arange(w) + 0.5)
    ys = tile.bounds[3] - tile.resolution * (np.arange(h) + 0.5)
    cube = xr.Dataset({"reflectance": (("time", "band", "y", "x"), refl), "clear_count": (("time", "y", "x"), clear),
                       "never_observed": (("y", "x"), never)},
                      coords={"time": TIMES, "band": BANDS, "y": ys, "x": xs}, attrs={"tile": tile.id, "halo_px": 0})
    return cube.rio.write_crs(tile.crs).rio.write_transform(tile.transform)


@pytest.fixture(scope="module")
def block_files(tmp_path_factory):
    """Two 32 px tiles of one block: cubes (the second observed on its left half only) and labels
    (crop on the top rows, non-crop below, unlabelled in the right quarter)."""
    root = tmp_path_factory.mktemp("block")
    tiles = [Tile(ix=100 + i, iy=200, crs="EPSG:32614", resolution=10.0, size=32) for i in range(2)]
    cubes = []
    for i, tile in enumerate(tiles):
        path = root / f"{tile.id}.nc"
        write_cube(_tile_cube(tile, i, observed_cols=32 if i == 0 else 16), path)
        cubes.append(str(path))
    block = AreaGrid(tuple(tiles))
    labels = np.zeros(block.shape, np.uint8)
    labels[:10] = 1
    labels[:, 48:] = 255
    write_geotiff(root / "labels.tif", labels, transform=block.transform, crs=block.crs, nodata=255)
    return root, cubes, tiles


def test_pretraining_store_holds_observed_windows_of_the_cubes(block_files):
    root, cubes, tiles = block_files
    counts = write_block_patches(kind="pretrain", cube_paths=cubes, label_paths=None, block="bx0001y0002",
                                 settings=PRETRAIN, out_path=root / "pretrain.nc")
    assert counts == {tiles[0].id: 12, tiles[1].id: 6}  # the half-observed tile gets half the patches
    store = PatchStore.open(root / "pretrain.nc")
    assert len(store) == 18 and store.bands == tuple(BANDS) and store.size == 16
    np.testing.assert_array_equal(store.times, TIMES.astype("datetime64[D]"))
    import netCDF4

    with netCDF4.Dataset(root / "pretrain.nc") as ds:
        rows, cols, tile_of = ds["row"][:], ds["col"][:], ds["tile"][:]
    dataset = PatchDataset([store])
    for k in range(len(dataset)):
        cube = open_cube(cubes[[t.id for t in tiles].index(tile_of[k])])  # the stored int16
        window = dict(y=slice(rows[k], rows[k] + 16), x=slice(cols[k], cols[k] + 16))
        item = dataset[k]
        np.testing.assert_array_equal(item["reflectance"], cube["reflectance"].isel(**window).values)
        np.testing.assert_array_equal(item["observed"], cube["clear_count"].isel(**window).values > 0)
        # the centre pixel of every patch was observed
        assert cube["never_observed"].values[rows[k] + 8, cols[k] + 8] == 0


def test_training_store_holds_labelled_centres_in_the_requested_balance(block_files):
    root, cubes, tiles = block_files
    write_block_patches(kind="train", cube_paths=cubes, label_paths=[str(root / "labels.tif")], block="bx0001y0002",
                        settings=TRAIN, out_path=root / "train.nc")
    store = PatchStore.open(root / "train.nc")
    dataset = PatchDataset([store])
    import netCDF4

    with netCDF4.Dataset(root / "train.nc") as ds:
        rows, cols, tile_of = ds["row"][:], ds["col"][:], list(ds["tile"][:])
    assert tile_of.count(tiles[0].id) == 20 and tile_of.count(tiles[1].id) == 20
    centre_classes = []
    with rasterio.open(root / "labels.tif") as src:
        labels = src.read(1)
    for k in range(len(dataset)):
        offset = 32 * [t.id for t in tiles].index(tile_of[k])
        item = dataset[k]
        # tile 2 is observed on its left half only, where its labels end (unlabelled beyond)
        np.testing.assert_array_equal(item["labels"], labels[rows[k]:rows[k] + 16, offset + cols[k]:offset + cols[k] + 16])
        centre_classes.append(item["labels"][8, 8])
    assert set(np.unique(centre_classes)) <= {0, 1}
    assert np.sum(np.array(centre_classes[:20]) == 1) == 5  # crop_share 0.25 of 20 in the first tile


def test_sampler_is_a_fixed_seeded_budget():
    a = list(BudgetSampler(10, 25, max_offset=4, seed=3))
    assert a == list(BudgetSampler(10, 25, max_offset=4, seed=3)) and len(a) == 25
    assert all(0 <= p < 10 and 0 <= dy <= 4 and 0 <= dx <= 4 for p, dy, dx in a)
    assert a != list(BudgetSampler(10, 25, max_offset=4, seed=4))


class _FakeStore:
    def __init__(self, block, tiles):
        self.block, self.tiles, self.bands, self.size = block, np.array(tiles, dtype=object), ("a",), 8
        self.times, self.path = np.array(["2023-01-01"], "datetime64[D]"), block

    def __len__(self):
        return len(self.tiles)


@pytest.mark.parametrize("seed", range(5))
def test_held_out_blocks_never_feed_training(seed):
    stores = [_FakeStore(f"b{b}", [f"t{b}{i % 3}" for i in range(4 + b)]) for b in range(10)]
    dataset = PatchDataset(stores)
    train_at, val_at, unit = split_validation(dataset, fraction=0.2, seed=seed)
    assert unit == "block" and len(train_at) + len(val_at) == len(dataset)
    held = {dataset.block_of(p) for p in val_at}
    assert len(held) == 2
    assert not held & {dataset.block_of(p) for p in train_at}
    assert val_at.tolist() == split_validation(dataset, fraction=0.2, seed=seed)[1].tolist()


def test_an_area_of_one_block_holds_out_whole_tiles():
    dataset = PatchDataset([_FakeStore("b0", ["t1", "t2", "t1", "t3", "t4", "t4"])])
    train_at, val_at, unit = split_validation(dataset, fraction=0.25, seed=0)
    assert unit == "tile"
    assert not {dataset.tile_of(p) for p in val_at} & {dataset.tile_of(p) for p in train_at}


def test_an_area_of_two_blocks_holds_out_tiles_not_half_of_it():
    """One of two blocks would be half the area's labels: with fewer than 1 / fraction blocks,
    whole tiles are held out."""
    dataset = PatchDataset([_FakeStore("b0", ["t1", "t1", "t2", "t2"]), _FakeStore("b1", ["t3", "t3", "t4", "t4"])])
    train_at, val_at, unit = split_validation(dataset, fraction=0.2, seed=0)
    assert unit == "tile" and len(val_at) == 2
    assert not {dataset.tile_of(p) for p in val_at} & {dataset.tile_of(p) for p in train_at}


def test_the_forest_fits_on_a_uniform_sample_of_the_areas_consensus(block_files):
    """As a user's notebook would: every labelled, observed pixel of the area kept with the same
    probability (not the deep model's patches), monthly medians, scikit-learn's forest."""
    from cropmap.learning.forest import fit_random_forest, random_forest_block
    from cropmap.settings import RandomForestSettings

    root, cubes, tiles = block_files
    # labelled and observed: the first tile's 32 x 32 px, the second's 16 observed columns
    model = fit_random_forest(cube_paths=cubes, label_paths=[str(root / "labels.tif")],
                              settings=RandomForestSettings(seed=0, trees=5, max_samples=300))
    counts = model["pixels_per_tile"]
    assert 240 <= sum(counts.values()) <= 300
    assert 1.5 < counts[tiles[0].id] / counts[tiles[1].id] < 2.6  # 1,024 against 512 labelled pixels
    assert len(model["forest"].estimators_) == 5 and model["forest"].n_features_in_ == len(np.unique(TIMES.astype("datetime64[M]"))) * len(BANDS)
    everything = fit_random_forest(cube_paths=cubes, label_paths=[str(root / "labels.tif")],
                                   settings=RandomForestSettings(seed=0, trees=5, max_samples=100000))
    assert everything["pixels_per_tile"] == {tiles[0].id: 1024, tiles[1].id: 512}
    out = random_forest_block(cube_paths=cubes, model=everything, block=AreaGrid(tuple(tiles)))
    assert (out[0][:, 48:] == 255).all() and set(np.unique(out[0][:, :48])) <= {0, 1}
    with pytest.raises(Exception, match="no consensus label"):
        empty = root / "empty.tif"
        write_geotiff(empty, np.full((32, 64), 255, np.uint8), transform=AreaGrid(tuple(tiles)).transform,
                      crs="EPSG:32614", nodata=255)
        fit_random_forest(cube_paths=cubes, label_paths=[str(empty)],
                          settings=RandomForestSettings(seed=0, trees=5, max_samples=300))
    # labels of one class only (a small area, a crop-free district): the forest predicts that class
    for value in (0, 1):
        one_class = root / f"one_class{value}.tif"
        write_geotiff(one_class, np.full((32, 64), value, np.uint8), transform=AreaGrid(tuple(tiles)).transform,
                      crs="EPSG:32614", nodata=255)
        model = fit_random_forest(cube_paths=cubes, label_paths=[str(one_class)],
                                  settings=RandomForestSettings(seed=0, trees=5, max_samples=300))
        out = random_forest_block(cube_paths=cubes, model=model, block=AreaGrid(tuple(tiles)))
        observed = out[0] != 255
        assert observed.any() and (out[0][observed] == value).all() and (out[1][observed] == 100 * value).all()


def test_stores_of_other_dates_are_refused():
    a, b = _FakeStore("b0", ["t"]), _FakeStore("b1", ["t"])
    b.times = np.array(["2023-01-02"], "datetime64[D]")
    with pytest.raises(Exception, match="differ in bands, dates or patch size"):
        PatchDataset([a, b])


def test_training_needs_only_the_patch_stores(block_files, tmp_path):
    """Cubes and labels are gone before `pretrain` and `train` run: the stores are all they read."""
    import shutil

    from cropmap.learning.training import pretrain, train

    root, cubes, tiles = block_files
    copies = [shutil.copy(cube, tmp_path) for cube in cubes]
    labels = shutil.copy(root / "labels.tif", tmp_path)
    for kind, kind_settings in (("pretrain", PRETRAIN), ("train", TRAIN)):
        write_block_patches(kind=kind, cube_paths=copies, label_paths=[labels], block="bx0001y0002",
                            settings=kind_settings, out_path=tmp_path / f"{kind}.nc")
    for path in [*copies, labels]:
        (tmp_path / path).unlink()
    model = ModelSettings(width=8, heads=2, temporal_layers=1, attention_pool=4, date_encoding="season",
                          attention_in_reconstruction=True, series_skip=False, series_hidden=0)
    pretrain(stores=[PatchStore.open(tmp_path / "pretrain.nc")],
             settings=PretrainSettings(model=model, steps=2, batch_size=2, patch_size=16, mask_ratio=0.4,
                                       ndvi_threshold=0.2, learning_rate=1e-3, seed=0, observed_only=True,
                                       season_start="2023-03-01"),
             out_path=tmp_path / "p.pt", curve_csv=tmp_path / "p.csv", curve_png=tmp_path / "p.png", workers=1)
    result = train(stores=[PatchStore.open(tmp_path / "train.nc")],
                   settings=TrainSettings(model=model, steps=2, batch_size=2, patch_size=12, learning_rate=1e-3,
                                          seed=0, similarity_weight=0.5, similarity_sigma=0.5, aggregation_weight=0.5,
                                          validation_fraction=0.5, eval_every=1, patience=5, use_pretrained=True,
                                          similarity_pairs=64, calibration="threshold", head_init="probe",
                                          season_start="2023-03-01", label_loss="cross_entropy", gce_q=0.7,
                                          lr_schedule="constant", weight_averaging=0.0, keep="best", own_label_weight=1.0),
                   pretrained=None, out_path=tmp_path / "m.pt", metrics_csv=tmp_path / "m.csv",
                   curves_png=tmp_path / "m.png", workers=1)
    assert (tmp_path / "p.pt").stat().st_size and (tmp_path / "m.pt").stat().st_size
    assert result["validation_unit"] == "tile" and result["steps_run"] == 2


def _own_labels_csv(path, points, tiles):
    """A CSV of one's own labels at (tile index, row, col, class) pixel centres, in lon / lat."""
    from pyproj import Transformer

    to_lonlat = Transformer.from_crs(tiles[0].crs, "EPSG:4326", always_xy=True)
    with open(path, "w") as f:
        f.write("id,lon,lat,class\n")
        for k, (t, r, c, cls) in enumerate(points):
            left, _, _, top = tiles[t].bounds
            lon, lat = to_lonlat.transform(left + 10 * (c + 0.5), top - 10 * (r + 0.5))
            f.write(f"{k},{lon},{lat},{cls}\n")
    return path


def test_own_labels_win_over_the_consensus_and_the_held_out_ones_never_train(block_files, tmp_path):
    """Labels of one's own replace the consensus where they lie (also where it has none), each gets a
    patch of its own, and the held-out ones are only in `check`, unlabelled for training."""
    import dataclasses

    import netCDF4

    from cropmap.labels.own_labels import read_own_labels

    root, cubes, tiles = block_files
    # non-crop on the consensus' crop rows, crop where it says non-crop, crop where it has no label
    points = [(0, 2, 3, 0), (0, 5, 20, 0), (0, 20, 4, 1), (0, 25, 25, 1), (1, 3, 4, 0), (1, 20, 10, 1),
              (0, 14, 14, 1), (1, 12, 2, 0), (0, 28, 8, 1), (0, 6, 28, 0)]
    csv_path = _own_labels_csv(tmp_path / "own.csv", points, tiles)
    settings = dataclasses.replace(TRAIN, own_holdout=0.3)
    counts = write_block_patches(kind="train", cube_paths=cubes, label_paths=[str(root / "labels.tif")],
                                 block="bx0001y0002", settings=settings, out_path=tmp_path / "train.nc",
                                 own_labels_path=str(csv_path))
    held = read_own_labels(csv_path, crs=tiles[0].crs, holdout=0.3, seed=settings.seed).held_out
    assert 0 < held.sum() < len(points)
    assert sum(counts.values()) == 40 + len(points)  # the consensus' patches, then one per label of one's own
    with netCDF4.Dataset(tmp_path / "train.nc") as ds:
        ds.set_auto_mask(False)
        rows, cols, tile_of = ds["row"][:], ds["col"][:], list(ds["tile"][:])
        labels, own, check = ds["labels"][:], ds["own"][:], ds["check"][:]
    seen = set()
    for k in range(len(rows)):
        t = [tile.id for tile in tiles].index(tile_of[k])
        for p, (pt, r, c, cls) in enumerate(points):
            if pt != t or not (rows[k] <= r < rows[k] + 16 and cols[k] <= c < cols[k] + 16):
                continue
            rr, cc = r - rows[k], c - cols[k]
            seen.add(p)
            if held[p]:
                assert labels[k, rr, cc] == 255 and check[k, rr, cc] == cls and own[k, rr, cc] == 0
            else:
                assert labels[k, rr, cc] == cls and own[k, rr, cc] == 1 and check[k, rr, cc] == 255
    assert seen == set(range(len(points)))
    store = PatchStore.open(tmp_path / "train.nc")
    assert store.check_pixels.sum() >= held.sum()
    assert len(PatchDataset([store]).with_check()) >= held.sum()
