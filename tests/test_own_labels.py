"""One's own labels: reading CSV and GeoPackage files, the seeded hold-out, rasterising, and the
refusal to train on the assessment's sample."""

import numpy as np
import pytest
import shapely
from affine import Affine

from cropmap.config import validate_config
from cropmap.errors import ConfigError, DataError
from cropmap.labels.own_labels import rasterize_own_labels, read_own_labels

CRS = "EPSG:32614"


def test_csv_points_with_a_reference_column_and_unlabelled_rows(tmp_path):
    """The layout of assessment/suggested.csv once half labelled: empty classes are skipped."""
    path = tmp_path / "suggested.csv"
    path.write_text("id,lon,lat,reference\n0,-96.65,39.30,1\n1,-96.66,39.31,\n2,-96.67,39.32,0\n")
    own = read_own_labels(path, crs=CRS, holdout=0.0, seed=0)
    assert own.classes.tolist() == [1, 0] and not own.held_out.any()
    x, y = shapely.get_coordinates(own.geometries).T
    assert 600_000 < x.min() < x.max() < 800_000 and 4_300_000 < y.min() < y.max() < 4_400_000  # UTM 14N metres


@pytest.mark.parametrize("text, message", [
    ("lon,lat,class\n-96.6,39.3,2\n", "line 2: class '2' is neither 1 (crop) nor 0 (non-crop)"),
    ("lon,lat,label\n-96.6,39.3,1\n", "no class column (expected one of: class, reference"),
    ("x,y,class\n1,2,1\n", "no lon or lat column"),
    ("lon,lat,class\n-96.6,39.3,\n", "no labelled feature"),
])
def test_bad_files_are_refused_in_one_line(tmp_path, text, message):
    path = tmp_path / "own.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_own_labels(path, crs=CRS, holdout=0.0, seed=0)


def test_holdout_is_seeded_and_by_whole_feature(tmp_path):
    path = tmp_path / "own.csv"
    path.write_text("lon,lat,class\n" + "".join(f"-96.6{i:02d},39.3,{i % 2}\n" for i in range(200)))
    a = read_own_labels(path, crs=CRS, holdout=0.3, seed=4)
    b = read_own_labels(path, crs=CRS, holdout=0.3, seed=4)
    np.testing.assert_array_equal(a.held_out, b.held_out)
    assert 0.2 < a.held_out.mean() < 0.4
    assert not np.array_equal(a.held_out, read_own_labels(path, crs=CRS, holdout=0.3, seed=5).held_out)


def test_gpkg_polygons_rasterise_to_the_pixels_whose_centre_they_hold(tmp_path):
    from pyproj import CRS as ProjCRS

    import pyogrio.raw

    square = shapely.box(1000, 2000, 1040, 2030)  # 4 x 3 pixels of 10 m
    path = tmp_path / "own.gpkg"
    pyogrio.raw.write(str(path), shapely.to_wkb(np.array([square], dtype=object)), [np.array([1], np.int32)],
                      ["class"], driver="GPKG", geometry_type="Polygon", crs=ProjCRS(CRS).to_wkt())
    own = read_own_labels(path, crs=CRS, holdout=0.0, seed=0)
    transform = Affine(10, 0, 980, 0, -10, 2060)  # a 10 x 10 grid from (980, 2060)
    train, held = rasterize_own_labels(own, transform=transform, shape=(10, 10))
    expected = np.full((10, 10), 255, np.uint8)
    expected[3:6, 2:6] = 1
    np.testing.assert_array_equal(train, expected)
    assert (held == 255).all()


def test_the_assessment_sample_never_trains(minimal_config):
    minimal_config["areas"]["demo"]["labels"] = {"path": "results/demo/assessment/sample_labelled.csv"}
    with pytest.raises(ConfigError, match="areas.demo.labels.path: .* is the accuracy assessment's sample"):
        validate_config(minimal_config)
    minimal_config["areas"]["demo"]["labels"] = {"path": "interpreted.csv"}
    minimal_config["assess"] = {"labelled_sample": "interpreted.csv"}
    with pytest.raises(ConfigError, match="is the accuracy assessment's sample"):
        validate_config(minimal_config)
    minimal_config["assess"] = {}
    config = validate_config(minimal_config)
    assert config["areas"]["demo"]["labels"] == {"path": "interpreted.csv", "weight": 1, "holdout": 0.3}
