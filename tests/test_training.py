import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from cropmap.errors import TrainingError
from cropmap.learning.patches import PatchStore, PatchWriter
from cropmap.settings import ModelSettings, PretrainSettings, TrainPatchSettings, TrainSettings
from cropmap.learning.training import dropped_dates, load_checkpoint, pretrain, shifted_series, train

BANDS = ["B02", "B03", "B04", "B08"]
MODEL = ModelSettings(width=8, heads=2, temporal_layers=1, attention_pool=4, date_encoding="season",
                      attention_in_reconstruction=True, series_skip=False, series_hidden=0)
SETTINGS = TrainSettings(
    model=MODEL, steps=4, batch_size=2, patch_size=16, learning_rate=1e-3, seed=0,
    similarity_weight=0.5, similarity_sigma=0.5, aggregation_weight=0.5,
    validation_fraction=0.25, eval_every=2, patience=3, use_pretrained=True, similarity_pairs=256,
    calibration="threshold", head_init="probe", season_start="2023-03-01", label_loss="cross_entropy", gce_q=0.7,
    lr_schedule="constant", weight_averaging=0.0, keep="best", own_label_weight=1.0,
)
PRETRAIN = PretrainSettings(model=MODEL, steps=150, batch_size=2, patch_size=16, mask_ratio=0.4,
                            ndvi_threshold=0.2, learning_rate=3e-3, seed=0, observed_only=True, season_start="2023-03-01")


def synthetic_store(path, *, kind="train", labels_value=None, seed=0, check=None, dates=6,
                    year_start="2022-12-31") -> PatchStore:
    """Nine 16 px patches of a 48 px tile of two fields with different seasonal curves (int16
    reflectance * 10000), as one block's patch store; `check` (48, 48): held-out labels of one's own;
    `dates` composites from day 90 to 270 after `year_start`."""
    rng = np.random.default_rng(seed)
    t, h, w = dates, 48, 48
    crop = np.zeros((h, w), bool)
    crop[:, : w // 2] = True
    doy = np.linspace(90, 270, t)
    veg = np.where(crop, np.exp(-((doy[:, None, None] - 190) / 30) ** 2), 0.5)
    red = 0.12 - 0.09 * veg
    nir = 0.2 + 0.25 * veg
    refl = np.stack([0.05 + 0 * veg, 0.08 + 0 * veg, red, nir], axis=1)
    refl = refl + rng.normal(0, 0.005, refl.shape)
    labels = np.where(crop, 1, 0).astype(np.uint8) if labels_value is None else np.full((h, w), labels_value, np.uint8)
    times = np.datetime64(year_start) + doy.astype(int)
    rows, cols = (a.ravel() for a in np.meshgrid([0, 16, 32], [0, 16, 32], indexing="ij"))
    with PatchWriter(path, kind=kind, times=times, bands=BANDS, size=16, block=f"b{seed}") as writer:
        writer.add(tile=f"t{seed}", reflectance=(refl * 10000).astype(np.int16), observed=np.ones((t, h, w), bool),
                   labels=labels if kind == "train" else None, rows=rows, cols=cols, check=check)
    return PatchStore.open(path)


def test_empty_label_set_stops_before_training(tmp_path):
    with pytest.raises(TrainingError, match="relax the consensus"):
        train(stores=[synthetic_store(tmp_path / "s.nc", labels_value=255)], settings=SETTINGS, pretrained=None, out_path=tmp_path / "m.pt",
              metrics_csv=tmp_path / "m.csv", curves_png=tmp_path / "m.png")
    assert not (tmp_path / "m.pt").exists()


def test_non_finite_loss_names_the_step(tmp_path):
    """A pretrained encoder that diverged (NaN weights) makes the first loss NaN."""
    from cropmap.learning.model import ModelConfig, SpatioTemporalNet

    store = synthetic_store(tmp_path / "s.nc")
    state = SpatioTemporalNet(ModelConfig(in_bands=4, **dataclasses.asdict(MODEL))).state_dict()
    state["embed.weight"][0, 0] = float("nan")
    pretrained = {"model_config": ModelConfig(in_bands=4, **dataclasses.asdict(MODEL)).to_dict(), "state_dict": state,
                  "band_mean": torch.zeros(4), "band_std": torch.ones(4), "bands": BANDS}
    with pytest.raises(TrainingError, match=r"train: loss became nan at step 1"):
        train(stores=[store], settings=SETTINGS, pretrained=pretrained, out_path=tmp_path / "m.pt",
              metrics_csv=tmp_path / "m.csv", curves_png=tmp_path / "m.png")
    assert not (tmp_path / "m.pt").exists()


def test_pretraining_beats_the_mean_value_baseline(tmp_path):
    stores = [synthetic_store(tmp_path / f"{s}.nc", kind="pretrain", seed=s) for s in range(2)]
    pretrain(stores=stores, settings=PRETRAIN, out_path=tmp_path / "p.pt", curve_csv=tmp_path / "p.csv",
             curve_png=tmp_path / "p.png")
    import csv

    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    last = rows[-10:]
    mse = np.mean([float(r["masked_mse"]) for r in last])
    baseline = np.mean([float(r["mean_value_mse"]) for r in last])
    assert mse < 0.7 * baseline
    ckpt = load_checkpoint(tmp_path / "p.pt")
    assert ckpt["bands"] == BANDS and ckpt["band_std"].shape == (4,)


def test_training_is_reproducible_and_learns(tmp_path):
    stores = [synthetic_store(tmp_path / f"{s}.nc", seed=s) for s in range(2)]  # one store's tiles held out
    settings = dataclasses.replace(SETTINGS, steps=30, eval_every=10, patience=10)
    results = []
    for run in ("a", "b"):
        results.append(train(stores=stores, settings=settings, pretrained=None, out_path=tmp_path / f"{run}.pt",
                             metrics_csv=tmp_path / f"{run}.csv", curves_png=tmp_path / f"{run}.png"))
    a, b = (load_checkpoint(tmp_path / f"{r}.pt") for r in "ab")
    for key in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][key], b["state_dict"][key])
    assert results[0]["val_f1"] > 0.9
    assert results[0]["validation_unit"] == "tile"  # two blocks are too few to hold out a fifth of them


@pytest.fixture(scope="module")
def demo_tile(tmp_path_factory):
    """The pretraining and training patch stores of one 64 px tile of the demo area, composited
    every 10 days from April to September, with its consensus labels (crop and non-crop)."""
    from test_scenes import _config

    from cropmap.config import typed_settings
    from cropmap.demo.area import make_demo
    from cropmap.grid import blocks_for_area
    from cropmap.labels.blocks import block_labels, write_block_labels
    from cropmap.learning.patches import write_block_patches
    from cropmap.acquisition.search import search_items
    from cropmap.acquisition.cube import write_cube
    from cropmap.acquisition.sits import build_tile_cube

    root = tmp_path_factory.mktemp("demo_tile")
    config = _config(root)
    config["areas"]["demo"]["season"] = {"start": "2023-04-01", "end": "2023-09-30"}
    config["areas"]["demo"]["glc"] = {"worldcover": {"type": "esa-worldcover", "path": str(root / "glc/worldcover.tif")},
                                      "glad": {"type": "glad-cropland", "path": str(root / "glc/glad_cropland.tif")}}
    config["sits"]["interval_days"] = 10
    config["areas"]["demo"]["demo"]["seed"] = 2  # a landscape whose consensus holds both classes in this tile
    make_demo(settings=typed_settings(config, "demo", "demo"), out_dir=root)
    items = list(search_items(settings=typed_settings(config, "demo", "search")))
    settings = typed_settings(config, "demo", "sits")
    block_id, block = next(iter(blocks_for_area(settings.grid, 4).items()))
    write_cube(build_tile_cube(items=items, tile=block.tiles[0], settings=settings), root / "cube.nc")
    labels = typed_settings(config, "demo", "labels")
    write_block_labels(root / "labels.tif", block_labels(block=block, products=labels.products,
                                                         consensus=labels.consensus),
                       block=block, product_names=list(labels.products))
    stores = {}
    for kind in ("pretrain", "train"):
        write_block_patches(kind=kind, cube_paths=[str(root / "cube.nc")], label_paths=[str(root / "labels.tif")],
                            block=block_id, settings=TrainPatchSettings(size=32, per_tile=48, seed=0, crop_share=0.5,
                                                                  follow_labelled_share=False, own_holdout=0.0),
                            out_path=root / f"{kind}.nc")
        stores[kind] = [PatchStore.open(root / f"{kind}.nc")]
    return stores


@pytest.fixture(scope="module")
def demo_pretraining(demo_tile, tmp_path_factory):
    """(checkpoint, loss curve rows) of 200 steps of masked pretraining on the demo tile."""
    import csv

    root = tmp_path_factory.mktemp("demo_pretraining")
    pretrain(stores=demo_tile["pretrain"], settings=dataclasses.replace(PRETRAIN, steps=200, patch_size=24), out_path=root / "p.pt",
             curve_csv=root / "p.csv", curve_png=root / "p.png")
    return load_checkpoint(root / "p.pt"), list(csv.DictReader(open(root / "p.csv")))


def test_pretraining_on_the_demo_data_beats_the_mean_value_baseline(demo_pretraining):
    _, rows = demo_pretraining
    first = np.mean([float(r["masked_mse"]) for r in rows[:10]])
    mse = np.mean([float(r["masked_mse"]) for r in rows[-20:]])
    baseline = np.mean([float(r["mean_value_mse"]) for r in rows[-20:]])
    assert mse < 0.5 * baseline, (mse, baseline)
    assert mse < 0.5 * first  # it learned, not merely started low


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fine_tuning_from_pretraining_starts_from_a_lower_loss(demo_tile, demo_pretraining, tmp_path, seed):
    """The loss fine-tuning starts from: that of the head fitted to the frozen encoder (LP-FT), on the
    same consensus pixels, with the pretrained encoder and with a freshly initialised one."""
    checkpoint, _ = demo_pretraining
    settings = dataclasses.replace(SETTINGS, steps=1, patch_size=24, batch_size=4, seed=seed)
    start = {}
    for name, pretrained in (("scratch", None), ("pretrained", checkpoint)):
        result = train(stores=demo_tile["train"], settings=settings, pretrained=pretrained, out_path=tmp_path / f"{name}.pt",
                       metrics_csv=tmp_path / f"{name}.csv", curves_png=tmp_path / f"{name}.png")
        start[name] = result["probe_loss"]
    assert start["pretrained"] < 0.95 * start["scratch"], start


def test_a_pretrained_checkpoint_that_does_not_fit_is_refused_in_one_line():
    """`pretrain.from` may name another area's encoder (issue 23): its bands, size and date
    encoding must be this area's, and what differs is said."""
    from cropmap.learning.training import check_pretrained_fits

    model = ModelSettings(width=16, heads=2, temporal_layers=1, attention_pool=4, date_encoding="season",
                          attention_in_reconstruction=True, series_skip=False, series_hidden=0)
    fits = {"bands": ["B02", "B03"], "model_config": {"width": 16, "heads": 2, "temporal_layers": 1,
                                                      "attention_pool": 4, "date_encoding": "season"}}
    check_pretrained_fits(fits, bands=["B02", "B03"], model=model)
    wider = {**fits, "model_config": {**fits["model_config"], "width": 32, "date_encoding": "day_of_year"}}
    with pytest.raises(TrainingError) as err:
        check_pretrained_fits(wider, bands=["B02", "B04"], model=model)
    message = str(err.value)
    assert "\n" not in message
    assert "width 32 (model.width: 16)" in message and "date_encoding day_of_year" in message
    assert "bands ['B02', 'B03'] (the area's: ['B02', 'B04'])" in message


def test_held_out_labels_of_ones_own_choose_the_checkpoint(tmp_path):
    """With held-out labels of one's own in the stores, they are the validation: no consensus tile is
    held out, and the selection F1 is theirs. Here all four say non-crop, so the crop F1 on them is
    0 whatever the model predicts (on the consensus' held-out pixels it would be above 0.9)."""
    check = np.full((48, 48), 255, np.uint8)
    check[5, 5] = check[40, 40] = check[5, 40] = check[40, 30] = 0
    stores = [synthetic_store(tmp_path / "a.nc", check=check), synthetic_store(tmp_path / "b.nc", seed=1)]
    settings = dataclasses.replace(SETTINGS, steps=20, eval_every=10, patience=10)
    result = train(stores=stores, settings=settings, pretrained=None, out_path=tmp_path / "m.pt",
                   metrics_csv=tmp_path / "m.csv", curves_png=tmp_path / "m.png")
    assert result["validation_unit"] == "own label" and result["training_patches"] == 18
    assert result["val_f1"] == 0.0


def test_ones_own_labels_weigh_as_a_mean_of_their_own_not_as_one_pixel_among_many():
    from cropmap.learning.training import label_loss, supervised_loss

    # (1, 2, 1, 100): pixel 0 says non-crop, the 99 others crop; every label is crop
    logits = torch.cat([torch.full((1, 1, 1, 100), -2.0), torch.full((1, 1, 1, 100), 2.0)], dim=1)
    logits[0, :, 0, 0] = torch.tensor([2.0, -2.0])
    labels = torch.ones(1, 1, 100, dtype=torch.int64)
    weight = torch.ones(2)
    none_own = torch.zeros(1, 1, 100, dtype=torch.bool)
    plain = supervised_loss(logits, labels, none_own, class_weight=weight, own_weight=5.0)
    assert torch.isclose(plain, label_loss(logits, labels, class_weight=weight))  # no labels of one's own: as before
    own = none_own.clone()
    own[0, 0, 0] = True  # the one wrong pixel is one's own
    mine = supervised_loss(logits, labels, own, class_weight=weight, own_weight=5.0)
    wrong = label_loss(logits[..., :1], labels[..., :1], class_weight=weight)
    right = label_loss(logits[..., 1:], labels[..., 1:], class_weight=weight)
    assert torch.isclose(mine, right + 5.0 * wrong)  # the consensus' mean plus 5 x one's own mean
    assert mine > 50 * plain  # where per pixel it would have weighed 5 / 104 of the loss


def test_keep_last_writes_the_end_of_the_schedule_and_never_stops_early(tmp_path):
    stores = [synthetic_store(tmp_path / f"{s}.nc", seed=s) for s in range(2)]
    settings = dataclasses.replace(SETTINGS, steps=12, eval_every=2, patience=1, keep="last", lr_schedule="cosine",
                                   weight_averaging=0.9)
    result = train(stores=stores, settings=settings, pretrained=None, out_path=tmp_path / "m.pt",
                   metrics_csv=tmp_path / "m.csv", curves_png=tmp_path / "m.png")
    assert result["steps_run"] == 12 and result["best_step"] == 12
    assert load_checkpoint(tmp_path / "m.pt")["best_step"] == 12


@hypothesis_settings(max_examples=30, deadline=None)
@given(dates=st.integers(1, 12), max_shift=st.floats(0, 3), seed=st.integers(0, 1000))
def test_a_shifted_series_is_the_patch_own_series_moved_in_time(dates, max_shift, seed):
    torch.manual_seed(seed)
    ramp = torch.arange(dates, dtype=torch.float32)  # a series whose value is its date's index
    x = ramp[None, :, None, None, None].repeat(5, 1, 2, 3, 3) + torch.arange(5.0)[:, None, None, None, None] * 100
    out = shifted_series(x, max_shift=max_shift) - torch.arange(5.0)[:, None, None, None, None] * 100
    assert out.shape == x.shape
    for b in range(5):
        # one shift per patch, the same for every band and pixel, within the bound; the ends repeated
        series = out[b, :, 0, 0, 0]
        assert torch.allclose(out[b], series[:, None, None, None].expand_as(out[b]))
        shift = ramp - series
        inside = (series > 0) & (series < dates - 1)
        if inside.any():
            assert torch.allclose(shift[inside], shift[inside][0], atol=1e-3)
            assert abs(float(shift[inside][0])) <= max_shift + 1e-3
        assert float(series.min()) >= -1e-3 and float(series.max()) <= dates - 1 + 1e-3


def test_no_shift_leaves_the_series_as_it_is():
    torch.manual_seed(0)
    x = torch.randn(64, 6, 2, 2, 2)
    out = shifted_series(x, max_shift=0.0)
    assert torch.equal(out, x)


def test_dropped_dates_drop_whole_pixel_dates_at_the_rate():
    torch.manual_seed(0)
    x = torch.randn(8, 10, 3, 16, 16)
    out = dropped_dates(x, rate=0.25)
    dropped = (out == 0).all(dim=2)  # (B, T, H, W): every band of a pixel-date together
    kept = (out == x).all(dim=2)
    assert (dropped | kept).all()
    assert abs(float(dropped.float().mean()) - 0.25) < 0.02
    assert torch.equal(dropped_dates(x, rate=0.0), x)


@pytest.mark.parametrize("augmentation", [{"time_shift_days": 20.0}, {"date_dropout": 0.2}])
def test_training_with_an_augmentation_runs_and_learns(tmp_path, augmentation):
    stores = [synthetic_store(tmp_path / f"{s}.nc", seed=s) for s in range(2)]
    settings = dataclasses.replace(SETTINGS, steps=12, keep="last", calibration="none", **augmentation)
    result = train(stores=stores, settings=settings, pretrained=None, out_path=tmp_path / "m.pt",
                   metrics_csv=tmp_path / "m.csv", curves_png=tmp_path / "m.png")
    assert result["steps_run"] == 12 and result["val_f1"] > 0.5


def test_one_pretraining_over_two_seasons_draws_each_batch_from_one_and_fine_tunes_either(tmp_path):
    """Issue 23: `pretrain.with_areas` pretrains one encoder on the patches of areas whose dates
    differ (another year, another compositing period); a batch never mixes them, and the encoder
    then fine-tunes on either area."""
    this_year = synthetic_store(tmp_path / "a.nc", kind="pretrain", seed=0)
    last_year = synthetic_store(tmp_path / "b.nc", kind="pretrain", seed=1, dates=9, year_start="2021-12-31")
    settings = dataclasses.replace(PRETRAIN, steps=20)
    result = pretrain(stores=[this_year], settings=settings, out_path=tmp_path / "p.pt", curve_csv=tmp_path / "p.csv",
                      curve_png=tmp_path / "p.png", other_seasons=[("2022-03-01", [last_year])])
    assert result["seasons"] == 2 and result["patches"] == 18
    checkpoint = load_checkpoint(tmp_path / "p.pt")
    assert checkpoint["season_starts"] == ["2023-03-01", "2022-03-01"]
    for store, start in ((this_year, "2023-03-01"), (last_year, "2022-03-01")):
        labelled = synthetic_store(tmp_path / f"t{len(store.times)}.nc", seed=2, dates=len(store.times),
                                   year_start=str(store.times[0] - np.timedelta64(90, "D")))
        out = train(stores=[labelled], settings=dataclasses.replace(SETTINGS, season_start=start), pretrained=checkpoint,
                    out_path=tmp_path / "m.pt", metrics_csv=tmp_path / "m.csv", curves_png=tmp_path / "m.png")
        assert out["val_f1"] > 0.5  # two fields of different curves, told apart after 4 steps


def test_season_batches_never_mix_dates_and_draw_seasons_by_their_patches(tmp_path):
    from cropmap.learning.patches import PatchDataset, SeasonBatches, SeasonPatches

    small = PatchDataset([synthetic_store(tmp_path / "a.nc", kind="pretrain", seed=0)], crop=8)
    large = PatchDataset([synthetic_store(tmp_path / f"b{i}.nc", kind="pretrain", seed=i, dates=9) for i in (1, 2, 3)], crop=8)
    union = SeasonPatches([small, large])
    batches = list(SeasonBatches(union, steps=400, batch_size=3, seed=0))
    assert len(batches) == 400 and all(len({index[0] for index in batch}) == 1 for batch in batches)
    assert 0.65 < np.mean([batch[0][0] == 1 for batch in batches]) < 0.85  # 27 of the 36 patches
    item = union[batches[0][0]]
    assert item["reflectance"].shape == (6 if batches[0][0][0] == 0 else 9, 4, 8, 8)
    assert int(union[9]["group"]) == 1 and int(union[8]["group"]) == 0  # plain ints count through the groups


def test_seasons_of_other_bands_are_refused(tmp_path):
    from cropmap.errors import DataError
    from cropmap.learning.patches import PatchDataset, SeasonPatches

    store = synthetic_store(tmp_path / "a.nc", kind="pretrain")
    other = tmp_path / "b.nc"
    with PatchWriter(other, kind="pretrain", times=store.times, bands=["B02", "B03", "B04", "B11"], size=16, block="b") as writer:
        writer.add(tile="t", reflectance=np.zeros((6, 4, 16, 16), np.int16), observed=np.ones((6, 16, 16), bool),
                   labels=None, rows=np.array([0]), cols=np.array([0]))
    with pytest.raises(DataError, match="different bands"):
        SeasonPatches([PatchDataset([store]), PatchDataset([PatchStore.open(other)])])
