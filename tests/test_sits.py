import datetime as dt
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cropmap.acquisition.compositing import clear_mask, composite, composite_dn, composite_periods, fill_gaps
from cropmap.settings import SeasonSettings
from cropmap.acquisition.resampling import resample_bilinear
from cropmap.acquisition.sits import reflectance_scaling


def test_clear_mask_removes_exactly_the_configured_classes():
    scl = np.arange(12, dtype=np.uint8).reshape(1, 3, 4)  # every SCL class once
    clear = clear_mask(scl, masked_classes=[0, 1, 3, 8, 9, 10], dilation_px=0)
    assert sorted(scl[clear].tolist()) == [2, 4, 5, 6, 7, 11]
    clear = clear_mask(scl, masked_classes=[0, 1, 3, 8, 9, 10, 11], dilation_px=0)
    assert 11 not in scl[clear]


def test_dilation_grows_masked_area_in_space_not_time():
    scl = np.full((3, 7, 7), 4, np.uint8)
    scl[1, 3, 3] = 9
    clear = clear_mask(scl, masked_classes=[9], dilation_px=1)
    assert clear[0].all() and clear[2].all()  # other dates untouched
    assert (~clear[1]).sum() == 5  # the cloud pixel and its 4 neighbours
    assert (~clear_mask(scl, masked_classes=[9], dilation_px=2)[1]).sum() == 13


def test_composite_periods_cover_season():
    periods = composite_periods(SeasonSettings(start="2023-03-01", end="2023-03-31"), 10)
    assert periods[0] == (dt.date(2023, 3, 1), dt.date(2023, 3, 11))
    assert periods[-1][1] == dt.date(2023, 4, 1)
    assert all(a[1] == b[0] for a, b in zip(periods, periods[1:]))


@settings(max_examples=60, deadline=None)
@given(
    values=arrays(np.float32, (5, 2, 3, 4), elements=st.floats(-1, 1, width=32)),
    clear=arrays(bool, (5, 3, 4)),
)
def test_composite_matches_nanmedian(values, clear):
    median, count = composite(values, clear)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(np.where(clear[:, None], values, np.nan), axis=0)
    np.testing.assert_allclose(median, expected, rtol=1e-6, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(count, clear.sum(axis=0))


@settings(max_examples=60, deadline=None)
@given(scl=arrays(np.uint8, (2, 9, 8), elements=st.sampled_from([4, 5, 8, 9])), dilation=st.integers(0, 3))
def test_clear_mask_dilation_matches_scipy(scl, dilation):
    from scipy import ndimage

    masked = np.isin(scl, [8, 9])
    if dilation:
        structure = np.zeros((3, 3, 3), bool)
        structure[1] = ndimage.generate_binary_structure(2, 1)
        masked = ndimage.binary_dilation(masked, structure=structure, iterations=dilation)
    np.testing.assert_array_equal(clear_mask(scl, masked_classes=[8, 9], dilation_px=dilation), ~masked)


@settings(max_examples=60, deadline=None)
@given(
    dn=arrays(np.uint16, st.tuples(st.integers(0, 9), st.just(2), st.just(3), st.just(4)),
              elements=st.integers(1, 65535)),
    data=st.data(),
)
def test_composite_of_dns_matches_the_float_composite(dn, data):
    clear = data.draw(arrays(bool, (dn.shape[0], 3, 4)))
    expected, _ = composite(dn.astype(np.float32), clear)
    np.testing.assert_allclose(composite_dn(dn, clear), expected, rtol=1e-6, equal_nan=True)


def test_resampling_matches_gdal_bilinear_on_aligned_grids():
    """20 m values onto the 10 m grid they share an origin with: GDAL's bilinear (what a per-scene
    warp would do) and ours agree wherever GDAL has all four neighbours; NaN neighbours are left out."""
    import rasterio.warp
    from affine import Affine
    from odc.geo.geobox import GeoBox

    rng = np.random.default_rng(3)
    coarse = GeoBox((12, 14), Affine(20, 0, 600000, 0, -20, 4000000), "EPSG:32614")
    fine = GeoBox((20, 24), Affine(10, 0, 600020, 0, -10, 3999980), "EPSG:32614")
    values = rng.random((2, *coarse.shape)).astype(np.float32)
    ours = resample_bilinear(values, src=coarse, dst=fine)
    gdal = np.zeros((2, *fine.shape), np.float32)
    rasterio.warp.reproject(values, gdal, src_transform=coarse.affine, src_crs="EPSG:32614",
                            dst_transform=fine.affine, dst_crs="EPSG:32614",
                            resampling=rasterio.warp.Resampling.bilinear)
    np.testing.assert_allclose(ours, gdal, atol=1e-5)
    values[:, 5, 5] = np.nan
    holed = resample_bilinear(values, src=coarse, dst=fine)
    assert not np.isnan(holed).any()
    # the 10 m pixel (8, 8) sits at 20 m position (4.75, 4.75): weights 1/16, 3/16, 3/16, 9/16 on
    # (4, 4), (4, 5), (5, 4) and the missing (5, 5), renormalised over the three that remain
    a = values[:, 4:6, 4:6]
    expected = (a[:, 0, 0] / 16 + 3 * a[:, 0, 1] / 16 + 3 * a[:, 1, 0] / 16) / (7 / 16)
    np.testing.assert_allclose(holed[:, 8, 8], expected, rtol=1e-5)


def test_resampling_leaves_out_holes_of_each_date_alone():
    """A hole on one date only is renormalised on that date; the others are plain bilinear."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    rng = np.random.default_rng(4)
    coarse = GeoBox((12, 14), Affine(20, 0, 600000, 0, -20, 4000000), "EPSG:32614")
    fine = GeoBox((20, 24), Affine(10, 0, 600020, 0, -10, 3999980), "EPSG:32614")
    values = rng.random((3, *coarse.shape)).astype(np.float32)
    whole = resample_bilinear(values, src=coarse, dst=fine)
    values[1, 5, 5] = np.nan
    holed = resample_bilinear(values, src=coarse, dst=fine)
    np.testing.assert_allclose(holed[[0, 2]], whole[[0, 2]], rtol=1e-6)
    a = values[1, 4:6, 4:6]
    np.testing.assert_allclose(holed[1, 8, 8], (a[0, 0] / 16 + 3 * a[0, 1] / 16 + 3 * a[1, 0] / 16) / (7 / 16),
                               rtol=1e-5)


def _reference_fill(series):
    t = np.arange(series.size)
    ok = ~np.isnan(series)
    if not ok.any():
        return series
    return np.interp(t, t[ok], series[ok])  # np.interp repeats edge values outside


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, (9, 6), elements=st.one_of(st.just(np.nan), st.floats(-5, 5, width=32))))
def test_fill_gaps_matches_numpy_interp(cube):
    filled = fill_gaps(cube, axis=0)
    for col in range(cube.shape[1]):
        np.testing.assert_allclose(filled[:, col], _reference_fill(cube[:, col]), rtol=1e-5, atol=1e-5,
                                   equal_nan=True)


def test_fill_gaps_along_other_axis():
    cube = np.array([[1.0, np.nan, 3.0, np.nan]], np.float32)
    np.testing.assert_allclose(fill_gaps(cube, axis=1), [[1, 2, 3, 3]])


class _Item:
    def __init__(self, assets, properties):
        self.assets, self.properties = assets, properties


class _Asset:
    def __init__(self, extra):
        self.extra_fields = extra


@pytest.mark.parametrize(
    ("extra", "props", "expected"),
    [
        ({"raster:bands": [{"scale": 0.0001, "offset": -0.1}]}, {}, (1e-4, -0.1)),
        ({}, {"s2:processing_baseline": "05.09"}, (1e-4, -0.1)),
        ({}, {"s2:processing_baseline": "03.01"}, (1e-4, 0.0)),
        ({}, {}, (1e-4, 0.0)),
    ],
)
def test_reflectance_scaling_from_metadata(extra, props, expected):
    item = _Item({"B04": _Asset(extra)}, props)
    assert reflectance_scaling(item, "B04") == pytest.approx(expected)
