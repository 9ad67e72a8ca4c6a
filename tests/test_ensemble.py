"""The network and the forest as partners: a block's map from the mean of their probabilities."""

import numpy as np
import pytest
import rasterio
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from cropmap.config import load_config, typed_settings
from cropmap.conventions import DECISION_THRESHOLD_TAG, NODATA
from cropmap.errors import DataError
from cropmap.grid import blocks_for_area
from cropmap.mapping.ensemble import combine_predictions, ensemble_step
from cropmap.mapping.predict import write_block_prediction
from conftest import REPO

percent = arrays(np.uint8, (2, 3, 4), elements=st.one_of(st.integers(0, 100), st.just(NODATA)))


def _prediction(pct: np.ndarray) -> np.ndarray:
    return np.stack([np.where(pct == NODATA, NODATA, pct >= 50).astype(np.uint8), pct])


@given(network=percent, forest=percent, weight=st.floats(0, 1))
def test_the_ensemble_is_the_weighted_mean_probability_cut_at_one_half(network, forest, weight):
    out = combine_predictions(_prediction(network[0]), _prediction(forest[0]), network_weight=weight)
    valid = (network[0] != NODATA) & (forest[0] != NODATA)
    assert np.all(out[:, ~valid] == NODATA)
    mean = weight * network[0][valid].astype(float) + (1 - weight) * forest[0][valid]
    assert np.all(np.abs(out[1][valid] - mean) <= 0.5 + 1e-4)
    assert np.array_equal(out[0][valid], (mean >= 50 - 1e-4).astype(np.uint8)) or np.all(
        np.abs(mean[out[0][valid] != (mean >= 50)] - 50) < 1e-3)
    # between the two: never more sure than the surer of them
    lo = np.minimum(network[0][valid], forest[0][valid]).astype(int)
    hi = np.maximum(network[0][valid], forest[0][valid]).astype(int)
    assert np.all((lo <= out[1][valid]) & (out[1][valid] <= hi))


def test_the_ensemble_step_writes_a_block_the_mosaic_reads(tmp_path):
    config = load_config(REPO / "config.yaml")
    settings = typed_settings(config, "demo", "ensemble")
    block_id, block = next(iter(blocks_for_area(settings.grid, settings.block_tiles).items()))
    rng = np.random.default_rng(0)
    shape = block.shape
    network, forest = (rng.integers(0, 101, shape).astype(np.uint8) for _ in range(2))
    network[:5] = NODATA
    for name, pct in (("network", network), ("forest", forest)):
        write_block_prediction(tmp_path / f"{name}.tif", _prediction(pct), block=block, threshold=0.5)
    ensemble_step(settings=settings, network_path=tmp_path / "network.tif", forest_path=tmp_path / "forest.tif",
                  block=block_id, out_path=tmp_path / "ensemble.tif")
    with rasterio.open(tmp_path / "ensemble.tif") as src:
        out, tags, transform = src.read(), src.tags(), src.transform
    assert transform == block.transform and tags[DECISION_THRESHOLD_TAG] == "0.5"
    assert np.all(out[:, :5] == NODATA)
    expected = np.rint(0.5 * network[5:].astype(float) + 0.5 * forest[5:]).astype(np.uint8)
    assert np.array_equal(out[1, 5:], expected)
    with pytest.raises(DataError, match="px"):
        combine_predictions(_prediction(network), _prediction(forest[:-1]), network_weight=0.5)
