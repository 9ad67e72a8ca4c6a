import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score, jaccard_score, precision_score, recall_score

from cropmap.assessment import binary_metrics, metrics_table, reference_on_grid
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
