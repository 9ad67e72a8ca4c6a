"""Uncertainty and suggested points (issue 23): the uncertainty is the margin to the map's
decision threshold; suggestions are the most uncertain pixels, at least D px apart, written as
real CSV and GeoPackage files."""

import csv
import json

import numpy as np
import pyogrio.raw
import rasterio
from affine import Affine
from hypothesis import given, settings as hsettings, strategies as st

from conftest import write_raster
from cropmap.conventions import DECISION_THRESHOLD_TAG, NODATA
from cropmap.settings import SuggestSettings
from cropmap.mapping.uncertainty import select_apart, suggest_points, uncertainty_percent, write_uncertainty

TRANSFORM = Affine(10, 0, 700000, 0, -10, 4360000)
CRS = "EPSG:32614"


def test_uncertainty_is_100_at_the_threshold_and_0_where_the_model_is_sure():
    p = np.array([0, 20, 35, 60, 100, NODATA], np.uint8)
    u = uncertainty_percent(p, threshold=0.35)
    assert list(u) == [0, 57, 100, 62, 0, NODATA]
    # at 0.5 it is sits' margin uncertainty, 100 - |2p - 100|
    p = np.arange(101, dtype=np.uint8)
    np.testing.assert_array_equal(uncertainty_percent(p), 100 - np.abs(2 * p.astype(int) - 100))


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), min_size=1, max_size=80),
       st.floats(0, 12), st.integers(1, 30))
@hsettings(max_examples=60, deadline=None)
def test_chosen_points_are_apart_and_taken_best_first(points, distance, n):
    rows, cols = (np.array(v, float) for v in zip(*points))
    chosen = select_apart(rows, cols, n=n, min_distance_px=distance)
    assert len(chosen) <= n and chosen[0] == 0  # the best candidate always goes in
    for i in chosen:
        for j in chosen:
            if i < j:
                assert (rows[i] - rows[j]) ** 2 + (cols[i] - cols[j]) ** 2 >= distance**2 - 1e-9
    # greedy: a candidate left out (before the n-th choice) is too close to one chosen before it
    last = chosen[-1] if len(chosen) == n else len(rows) - 1
    for k in set(range(last + 1)) - set(chosen.tolist()):
        assert any((rows[k] - rows[i]) ** 2 + (cols[k] - cols[i]) ** 2 < distance**2 for i in chosen if i < k)


def test_suggestions_are_the_least_certain_pixels_apart_with_their_class_shares(tmp_path):
    probability = np.full((64, 64), 95, np.uint8)  # sure of crop everywhere ...
    probability[10:14, 10:30] = 40  # ... but on a strip at the threshold
    probability[50:52, 40:60] = 38
    probability[0:2, 0:2] = NODATA
    classes = np.where(probability >= 40, 1, 0).astype(np.uint8)
    classes[0:2, 0:2] = NODATA
    write_raster(tmp_path / "p.tif", probability, transform=TRANSFORM, crs=CRS, nodata=NODATA)
    with rasterio.open(tmp_path / "p.tif", "r+") as dst:
        dst.update_tags(**{DECISION_THRESHOLD_TAG: "0.4"})
    write_raster(tmp_path / "map.tif", classes, transform=TRANSFORM, crs=CRS, nodata=NODATA)
    write_uncertainty(probability_path=tmp_path / "p.tif", out_path=tmp_path / "u.tif")
    with rasterio.open(tmp_path / "u.tif") as src:
        u = src.read(1)
        assert src.tags()[DECISION_THRESHOLD_TAG] == "0.4" and src.profile["tiled"]
    assert u[12, 15] == 100 and u[51, 50] == 95 and u[30, 30] == 8 and u[0, 0] == NODATA

    settings = SuggestSettings(points=6, min_distance_px=5, candidates_per_point=50, seed=1)
    summary = suggest_points(settings=settings, uncertainty_path=tmp_path / "u.tif", map_path=tmp_path / "map.tif",
                             probability_path=tmp_path / "p.tif", out_csv=tmp_path / "s.csv",
                             out_gpkg=tmp_path / "s.gpkg", out_json=tmp_path / "s.json", window=16)
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert len(rows) == 6 == summary["points"]
    # the 20 px strip at the threshold holds 4 points 5 px apart; then the second strip
    assert [int(r["uncertainty_pct"]) for r in rows] == [100] * 4 + [95] * 2
    xy = np.array([(float(r["x"]), float(r["y"])) for r in rows])
    gaps = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1))[np.triu_indices(6, 1)]
    assert gaps.min() >= 50  # 5 px of 10 m
    assert summary["map_class_shares"] == {"crop": 4 / 6, "non-crop": 2 / 6}
    assert json.loads((tmp_path / "s.json").read_text()) == summary
    meta, _, geometry, _ = pyogrio.raw.read(tmp_path / "s.gpkg")
    assert len(geometry) == 6 and "reference" in list(meta["fields"])
