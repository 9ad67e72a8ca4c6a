import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score, jaccard_score, precision_score, recall_score

from cropmap.assessment.metrics import binary_metrics, metrics_table, reference_on_grid
from cropmap.errors import DataError
from cropmap.grid import AreaGrid, Tile
from affine import Affine


def test_binary_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 2, 1000).astype(np.uint8)
    pred = np.where(rng.uniform(size=1000) < 0.8, ref, 1 - ref).astype(np.uint8)
    m = binary_metrics(pred, ref)
    assert m["f1"] == pytest.approx(f1_score(ref, pred))
    assert m["precision"] == pytest.approx(precision_score(ref, pred))
    assert m["recall"] == pytest.approx(recall_score(ref, pred))
    assert m["iou"] == pytest.approx(jaccard_score(ref, pred))
    assert m["kappa"] == pytest.approx(cohen_kappa_score(ref, pred))
    assert m["oa"] == pytest.approx(np.mean(ref == pred))
    assert sum(map(sum, m["confusion_matrix"])) == 1000


def test_nodata_is_ignored_and_coverage_reported():
    ref = np.array([1, 1, 0, 0, 255], np.uint8)
    pred = np.array([1, 255, 0, 1, 1], np.uint8)
    m = binary_metrics(pred, ref)
    assert m["pixels"] == 3
    assert m["coverage"] == pytest.approx(3 / 4)
    assert m["confusion_matrix"] == [[1, 1], [0, 1]]
    assert "| map |" in metrics_table({"map": m})


def test_reference_without_overlap_is_a_clear_error(raster_writer):
    tile = Tile(ix=136, iy=850, crs="EPSG:32614", resolution=10.0, size=32)
    path = raster_writer("ref.tif", np.ones((8, 8), np.uint8), transform=Affine(10, 0, 0, 0, -10, 80),
                         crs="EPSG:32614", nodata=255)
    with pytest.raises(DataError, match="does not overlap"):
        reference_on_grid(str(path), AreaGrid((tile,)), crop_classes=[1], nodata=255)


# Olofsson et al. (2014), Remote Sensing of Environment 148, section 5 worked example: sample counts
# of Table 8 (rows = map class = stratum, columns = reference), mapped area in 30 m pixels.
OLOFSSON_COUNTS = [[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]]
OLOFSSON_PIXELS = [200_000, 150_000, 3_200_000, 6_450_000]


def test_stratified_estimate_reproduces_olofsson_2014():
    from cropmap.assessment.sampling import stratified_estimate

    ha = [px * 0.09 for px in OLOFSSON_PIXELS]  # 1 pixel = 0.09 ha
    est = stratified_estimate(OLOFSSON_COUNTS, ha)
    # Table 9: error matrix in area proportions, to 4 decimals
    expected_p = [[0.0176, 0, 0.0013, 0.0011], [0, 0.0110, 0.0016, 0.0024],
                  [0.0019, 0, 0.2967, 0.0213], [0.0040, 0.0020, 0.0179, 0.6212]]
    np.testing.assert_allclose(est["error_matrix_proportions"], expected_p, atol=5e-5)
    # section 5.2.1: accuracies +/- 95 % half-widths, to 2 decimals
    np.testing.assert_allclose(est["users_accuracy"], [0.88, 0.73, 0.93, 0.96], atol=0.005)
    np.testing.assert_allclose(1.96 * np.array(est["users_accuracy_se"]), [0.07, 0.10, 0.04, 0.02], atol=0.005)
    np.testing.assert_allclose(est["producers_accuracy"], [0.75, 0.85, 0.93, 0.96], atol=0.005)
    # printed 0.21, 0.23, 0.03, 0.01: the paper's own eq. (7) gives 0.254 and 0.018 for the 2nd and
    # 4th (a known misprint), so those are checked at the equation's value
    np.testing.assert_allclose(1.96 * np.array(est["producers_accuracy_se"]), [0.21, 0.254, 0.03, 0.018], atol=0.005)
    assert est["overall_accuracy"] == pytest.approx(0.95, abs=0.005)
    assert 1.96 * est["overall_accuracy_se"] == pytest.approx(0.02, abs=0.005)
    # section 5.2.2: error-adjusted area and 95 % half-width, ha
    np.testing.assert_allclose(est["area"], [21158, 11686, 285770, 581386], atol=1.0)
    np.testing.assert_allclose(est["area_ci95"], [6158, 3756, 15510, 16282], atol=1.0)


def test_stratified_estimate_of_a_perfect_map_is_the_mapped_area():
    from cropmap.assessment.sampling import stratified_estimate

    est = stratified_estimate([[50, 0], [0, 50]], [300.0, 700.0])
    assert est["area"] == pytest.approx([300.0, 700.0])
    assert est["area_ci95"] == pytest.approx([0.0, 0.0])
    assert est["overall_accuracy"] == 1.0


def test_sample_sizes_follow_olofsson_eq13():
    from cropmap.assessment.sampling import sample_sizes

    # Olofsson et al. 2014, section 5.1.1: W = (0.02, 0.015, 0.32, 0.645), U = (0.7, 0.6, 0.9, 0.95),
    # S(O) = 0.01 gives n = 641 in total
    sizes = sample_sizes([0.02, 0.015, 0.32, 0.645], expected_users_accuracy=[0.7, 0.6, 0.9, 0.95],
                         target_se=0.01, min_per_stratum=0)
    assert abs(sum(sizes) - 641) <= 2
    assert sample_sizes([0.5, 0.5], expected_users_accuracy=[0.9, 0.9], target_se=0.05, min_per_stratum=50) == [50, 50]


def test_sample_is_stratified_by_map_class_and_reads_back(tmp_path, raster_writer):
    from cropmap.assessment.sampling import area_estimate, draw_sample, label_sample_from_raster

    classes = np.zeros((40, 40), np.uint8)
    classes[:, :10] = 1  # a quarter cropland
    transform = Affine(10, 0, 500000, 0, -10, 4400000)
    map_path = raster_writer("map.tif", classes, transform=transform, crs="EPSG:32614", nodata=255)
    truth = classes.copy()
    truth[:5, 10:20] = 1  # cropland the map missed
    ref_path = raster_writer("truth.tif", truth, transform=transform, crs="EPSG:32614", nodata=255)
    points = draw_sample(map_path=map_path, sizes=[60, 30], seed=1, out_csv=tmp_path / "s.csv",
                         out_gpkg=tmp_path / "s.gpkg")
    assert sum(p["stratum"] == 1 for p in points) == 30
    import pyogrio.raw

    meta, _, geometry, fields = pyogrio.raw.read(tmp_path / "s.gpkg")
    assert len(geometry) == 90 and "reference" in list(meta["fields"])
    label_sample_from_raster(tmp_path / "s.csv", map_crs="EPSG:32614", reference_path=str(ref_path),
                             crop_classes=[1], out_csv=tmp_path / "l.csv")
    result = area_estimate(map_path=map_path, labelled_sample=tmp_path / "l.csv", out_json=tmp_path / "a.json",
                           out_csv=tmp_path / "a.csv")
    true_crop_ha = truth.sum() * 0.01
    assert abs(result["area"][1] - true_crop_ha) <= result["area_ci95"][1] + 1e-9
    assert result["users_accuracy"][1] == 1.0


def test_unlabelled_sample_point_is_a_clear_error(tmp_path):
    from cropmap.assessment.sampling import read_labelled_sample

    path = tmp_path / "s.csv"
    path.write_text("id,stratum,reference\n0,1,1\n1,0,\n")
    with pytest.raises(DataError, match="point 1 has reference ''"):
        read_labelled_sample(path)


def test_reference_without_crop_classes_is_a_clear_error(raster_writer):
    tile = Tile(ix=136, iy=850, crs="EPSG:32614", resolution=10.0, size=32)
    path = raster_writer("ref.tif", np.full((32, 32), 5, np.uint8), transform=tile.transform, crs=tile.crs)
    with pytest.raises(DataError, match="crop_classes"):
        reference_on_grid(str(path), AreaGrid((tile,)), crop_classes=[1], nodata=None)


def test_reference_in_another_crs_is_reprojected(raster_writer):
    from rasterio.warp import transform_bounds

    tile = Tile(ix=136, iy=850, crs="EPSG:32614", resolution=10.0, size=32)
    w, s, e, n = transform_bounds(tile.crs, "EPSG:4326", *tile.bounds)
    deg = (e - w) / 64
    path = raster_writer("ref4326.tif", np.ones((80, 80), np.uint8),
                         transform=Affine(deg, 0, w - 8 * deg, 0, -deg, n + 8 * deg), crs="EPSG:4326")
    out = reference_on_grid(str(path), AreaGrid((tile,)), crop_classes=[1], nodata=None)
    assert (out == 1).all()


def _tile_and_truth():
    tile = Tile(ix=136, iy=850, crs="EPSG:32614", resolution=10.0, size=32)
    truth = np.zeros(tile.shape, np.uint8)
    truth[:, :16] = 1
    return tile, truth


def test_csv_points_reference_lon_lat_and_x_y(tmp_path):
    from pyproj import Transformer

    tile, truth = _tile_and_truth()
    to_lonlat = Transformer.from_crs(tile.crs, "EPSG:4326", always_xy=True)
    rows = ["id,x,y,lon,lat,crop"]
    for k, (r, c) in enumerate([(3, 2), (10, 12), (20, 20), (30, 31)]):
        x, y = tile.transform * (c + 0.5, r + 0.5)
        lon, lat = to_lonlat.transform(x, y)
        rows.append(f"{k},{x},{y},{lon},{lat},{truth[r, c]}")
    path = tmp_path / "points.csv"
    path.write_text("\n".join(rows) + "\n")
    grid = AreaGrid((tile,))
    out = reference_on_grid(str(path), grid, crop_classes=[1], nodata=None, class_column="crop")
    assert (out != 255).sum() == 4
    assert out[3, 2] == 1 and out[20, 20] == 0
    with pytest.raises(DataError, match="no column 'class'"):
        reference_on_grid(str(path), grid, crop_classes=[1], nodata=None)


def test_vector_polygons_reference(tmp_path):
    import pyogrio.raw
    import shapely

    tile, truth = _tile_and_truth()
    left, bottom, right, top = tile.bounds
    mid = left + 16 * tile.resolution
    polys = [shapely.box(left, bottom, mid, top), shapely.box(mid, bottom, right, top)]
    path = tmp_path / "ref.gpkg"
    pyogrio.raw.write(str(path), shapely.to_wkb(polys), [np.array([24, 176], np.int32)], ["cdl"],
                      driver="GPKG", geometry_type="Polygon", crs="EPSG:32614")
    out = reference_on_grid(str(path), AreaGrid((tile,)), crop_classes=[24], nodata=None, class_column="cdl")
    np.testing.assert_array_equal(out, truth)


def test_reference_without_crs_is_a_clear_error(tmp_path):
    import rasterio

    tile = Tile(ix=136, iy=850, crs="EPSG:32614", resolution=10.0, size=32)
    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", height=32, width=32, count=1, dtype="uint8",
                       transform=tile.transform) as dst:
        dst.write(np.ones((1, 32, 32), np.uint8))
    with pytest.raises(DataError, match="has no CRS"):
        reference_on_grid(str(path), AreaGrid((tile,)), crop_classes=[1], nodata=None)


def test_bad_reference_through_the_command_is_one_line(tmp_path, raster_writer, capsys):
    import json

    from cropmap.cli import main

    far = raster_writer("far.tif", np.ones((8, 8), np.uint8), transform=Affine(10, 0, 0, 0, -10, 80),
                        crs="EPSG:32614", nodata=255)
    grid = {"aoi": {"bbox": [-96.717, 39.2978, -96.6082, 39.3823]}, "crs": "auto", "resolution": 10, "tile_size": 512}
    settings = {"grid": grid, "reference": {"path": str(far), "crop_classes": [1], "nodata": 255, "class_column": "class",
                                             "crs": "EPSG:4326"},
                "positive_label": "crop", "table_decimals": 3, "products": []}
    code = main(["assess", "--settings", json.dumps(settings), "--map", str(far), "--labels", str(far),
                 "--out", str(tmp_path / "m.json"), "--table", str(tmp_path / "m.md"), "--csv", str(tmp_path / "m.csv"),
                 "--per-tile", str(tmp_path / "t.csv"), "--confusion-png", str(tmp_path / "c.png")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err and "does not overlap the map" in err
    assert not (tmp_path / "m.json").exists()
