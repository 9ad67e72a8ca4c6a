"""The area-wide steps work window by window: their numbers equal those of the whole arrays."""

import numpy as np
import pytest
import rasterio

from cropmap.assessment.metrics import Reference, assess_area, binary_metrics
from cropmap.grid import AreaGrid, blocks_for_area, tiles_for_area
from cropmap.settings import GridSettings, LabelQualitySettings, from_dict
from cropmap.io import write_geotiff
from cropmap.labels.blocks import LABEL_BANDS
from cropmap.mapping.predict import mosaic

TILE = 32
PRODUCTS = ["a", "b"]


def assert_same(actual: dict, expected: dict) -> None:
    """`actual` holds every key of `expected` with the same value (floats to rounding)."""
    assert expected.keys() <= actual.keys()
    for key, value in expected.items():
        if isinstance(value, dict):
            assert_same(actual[key], value)
        elif isinstance(value, list) and value and isinstance(value[0], str):
            assert actual[key] == value
        elif isinstance(value, list):
            np.testing.assert_allclose(np.array(actual[key], float), np.array(value, float), err_msg=key)
        else:
            assert actual[key] == pytest.approx(value, nan_ok=True), key


@pytest.fixture(scope="module")
def area(tmp_path_factory):
    """A 3 x 2 tile area in blocks of 2 x 2 tiles (partly filled blocks), with whole-area arrays of
    its truth, labels and predictions and the block files cut from them."""
    from conftest import bbox_inside
    from cropmap.grid import Tile

    root = tmp_path_factory.mktemp("area")
    first, last = Tile(136, 850, "EPSG:32614", 10.0, TILE), Tile(138, 851, "EPSG:32614", 10.0, TILE)
    inner = bbox_inside(first), bbox_inside(last)
    grid_settings = {"aoi": {"bbox": [inner[0][0], inner[0][1], inner[1][2], inner[1][3]]}, "crs": "EPSG:32614",
                     "resolution": 10, "tile_size": TILE}
    tiles = tiles_for_area(GridSettings(**grid_settings))
    assert len(tiles) == 6
    grid = AreaGrid(tuple(tiles))
    rng = np.random.default_rng(0)
    truth = (rng.uniform(size=grid.shape) < 0.4).astype(np.uint8)
    truth[:3, :5] = 255
    predicted = np.where(rng.uniform(size=grid.shape) < 0.9, truth, 1 - truth).astype(np.uint8)
    predicted[truth == 255] = 0
    predicted[-2:] = 255
    probability = rng.integers(0, 101, grid.shape).astype(np.uint8)
    products = np.stack([np.where(rng.uniform(size=grid.shape) < p, truth, 1 - truth) for p in (0.8, 0.7)]).astype(np.uint8)
    products[1, :, :4] = 255
    products[products > 1] = 0
    agree = (products[0] == products[1]) & (products[1] != 255)
    consensus = np.where(agree, products[0], 255).astype(np.uint8)
    labels = np.concatenate([np.stack([consensus, np.full(grid.shape, 2, np.uint8), agree.astype(np.uint8) * 2]),
                             products])
    write_geotiff(root / "truth.tif", truth, transform=grid.transform, crs=grid.crs, nodata=255)
    label_paths, prediction_paths = [], []
    for block_id, block in blocks_for_area(GridSettings(**grid_settings), 2).items():
        r = round((grid.bounds[3] - block.bounds[3]) / 10)
        c = round((block.bounds[0] - grid.bounds[0]) / 10)
        rows, cols = slice(r, r + block.shape[0]), slice(c, c + block.shape[1])
        # a block raster covers its tiles' bounding box; pixels of no tile stay 255
        write_geotiff(root / f"{block_id}.labels.tif", labels[:, rows, cols], transform=block.transform, crs=block.crs,
                      nodata=255, descriptions=[*LABEL_BANDS, *(f"product:{p}" for p in PRODUCTS)])
        write_geotiff(root / f"{block_id}.predict.tif", np.stack([predicted, probability])[:, rows, cols],
                      transform=block.transform, crs=block.crs, nodata=255)
        label_paths.append(str(root / f"{block_id}.labels.tif"))
        prediction_paths.append(str(root / f"{block_id}.predict.tif"))
    assert len(label_paths) == 2
    return {"root": root, "grid_settings": grid_settings, "tiles": tiles, "grid": grid, "truth": truth,
            "predicted": predicted, "probability": probability, "labels": labels, "label_paths": label_paths,
            "prediction_paths": prediction_paths}


def test_streamed_mosaic_equals_the_pasted_blocks(area):
    root, grid = area["root"], area["grid"]
    mosaic(area["prediction_paths"], grid, band=1, out_path=root / "map.tif", resampling="nearest",
           tags={"classes": "0 non-crop, 1 crop, 255 no data"})
    mosaic(area["prediction_paths"], grid, band=2, out_path=root / "probability.tif", resampling="average")
    for name, expected in (("map.tif", area["predicted"]), ("probability.tif", area["probability"])):
        with rasterio.open(root / name) as src:
            np.testing.assert_array_equal(src.read(1), expected)
            assert src.transform == grid.transform and src.crs == grid.crs and src.nodata == 255
            assert src.overviews(1) and src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    with rasterio.open(root / "map.tif") as src:
        assert src.tags()["classes"] == "0 non-crop, 1 crop, 255 no data"


def test_the_class_map_carries_its_colours_categories_and_styles(area, tmp_path):
    """GDAL reports the colour table, the category names (in the .aux.xml it keeps beside a COG)
    and the band description; QGIS styles and a legend go beside the maps."""
    import xml.etree.ElementTree as ET

    from cropmap.cli import main

    settings = {"grid": area["grid_settings"], "window": 16, "overlap": 4, "batch_size": 8, "threshold": None}
    import json

    code = main(["mosaic", "--settings", json.dumps(settings), "--tiles", *area["prediction_paths"],
                 "--map", str(tmp_path / "cropland.tif"), "--probability", str(tmp_path / "cropland_probability.tif"),
                 "--legend", str(tmp_path / "cropland_legend.png")])
    assert code == 0
    with rasterio.open(tmp_path / "cropland.tif") as src:
        assert src.colorinterp[0] == rasterio.enums.ColorInterp.palette
        assert src.colormap(1)[0] == (0x8C, 0x6D, 0x31, 255) and src.colormap(1)[1] == (0xF2, 0xC7, 0x2E, 255)
        assert src.descriptions == ("cropland class",)
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    categories = ET.parse(tmp_path / "cropland.tif.aux.xml").findall(".//CategoryNames/Category")
    assert [c.text for c in categories] == ["non-crop", "crop"]
    style = ET.parse(tmp_path / "cropland.qml").getroot()
    assert [(e.get("value"), e.get("label")) for e in style.iter("paletteEntry")] == [("0", "non-crop"), ("1", "crop")]
    ramp = ET.parse(tmp_path / "cropland_probability.qml").getroot()
    assert [i.get("value") for i in ramp.iter("item")][::4] == ["0", "100"]
    assert (tmp_path / "cropland_legend.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*partial*"))


def test_assessment_tile_by_tile_equals_the_whole_arrays(area):
    root = area["root"]
    mosaic(area["prediction_paths"], area["grid"], band=1, out_path=root / "map2.tif", resampling="nearest")
    reference = Reference(str(root / "truth.tif"), grid_crs="EPSG:32614", crop_classes=[1], nodata=255)
    metrics, per_tile = assess_area(tiles=area["tiles"], reference=reference, maps={"map": str(root / "map2.tif")},
                                    label_paths=area["label_paths"], products=PRODUCTS)
    truth, labels = area["truth"], area["labels"]
    expected = {"map": area["predicted"], "consensus": labels[0], "a": labels[3], "b": labels[4]}
    agree = labels[0] != 255
    for name, values in expected.items():
        assert_same(metrics[name], binary_metrics(values, truth))
        # where the products agree (the consensus labels the pixel) and where they do not
        assert_same(metrics[name]["agree"], binary_metrics(np.where(agree, values, 255), np.where(agree, truth, 255)))
        assert_same(metrics[name]["disagree"], binary_metrics(np.where(agree, 255, values), np.where(agree, 255, truth)))
    assert metrics["consensus"]["f1_disagree"] is None and metrics["map"]["f1_disagree"] is not None
    for tile in area["tiles"]:
        r, c = area["grid"].offset(tile)
        window = (slice(r, r + TILE), slice(c, c + TILE))
        assert_same(per_tile[tile.id], binary_metrics(area["predicted"][window], truth[window]))


def test_label_quality_tile_by_tile_equals_the_whole_arrays(area, tmp_path):
    from cropmap.labels.quality import label_quality, summarise_labels

    labels = area["labels"]
    settings = from_dict(LabelQualitySettings, {
        "grid": area["grid_settings"], "products": PRODUCTS,
        "reference": {"path": str(area["root"] / "truth.tif"), "crop_classes": [1], "nodata": 255,
                      "class_column": "class", "crs": "EPSG:4326"}})
    summary = label_quality(settings=settings, label_paths=area["label_paths"], out_json=tmp_path / "q.json",
                            out_png=tmp_path / "q.png", plot_side=40)
    whole = summarise_labels(labels[0], {"a": labels[3], "b": labels[4]}, area["truth"])
    assert_same(summary, whole)
    assert (tmp_path / "q.png").stat().st_size > 1000


def test_sample_drawn_window_by_window_is_stratified_and_exact(area, tmp_path):
    from cropmap.assessment.sampling import draw_sample, map_class_counts

    root = area["root"]
    mosaic(area["prediction_paths"], area["grid"], band=1, out_path=root / "map3.tif", resampling="nearest")
    predicted = area["predicted"]
    np.testing.assert_array_equal(map_class_counts(root / "map3.tif"), [np.sum(predicted == 0), np.sum(predicted == 1)])
    points = draw_sample(map_path=root / "map3.tif", sizes=[30, 20], seed=1, out_csv=tmp_path / "s.csv",
                         out_gpkg=tmp_path / "s.gpkg", window=16)  # 16 px windows: many of them
    assert [p["stratum"] for p in points].count(0) == 30 and [p["stratum"] for p in points].count(1) == 20
    rows, cols = rasterio.transform.rowcol(area["grid"].transform, [p["x"] for p in points], [p["y"] for p in points])
    assert len(set(zip(rows, cols))) == 50  # without replacement
    assert all(predicted[r, c] == p["stratum"] for r, c, p in zip(rows, cols, points))
    again = draw_sample(map_path=root / "map3.tif", sizes=[30, 20], seed=1, out_csv=tmp_path / "t.csv",
                        out_gpkg=tmp_path / "t.gpkg", window=16)
    assert again == points
