import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject

from cropmap.labels.products import PRODUCTS, Legend, legend_for, product_on_tile, product_sources, recode
from cropmap.grid import Tile

from conftest import bbox_inside, shared_fixture, write_raster


def test_recode_worldcover():
    values = np.array([0, 10, 30, 40, 50, 80])
    np.testing.assert_array_equal(recode(values, PRODUCTS["esa-worldcover"]), [255, 0, 0, 1, 0, 0])


def test_recode_explicit_noncrop_and_ignored():
    legend = Legend(crop_classes=(2,), noncrop_classes=(1,), nodata=0)
    np.testing.assert_array_equal(recode(np.array([0, 1, 2, 3]), legend), [255, 0, 1, 255])
    legend = legend_for({"type": "esri-lulc", "path": "x"})
    np.testing.assert_array_equal(recode(np.array([0, 5, 10, 11]), legend), [255, 1, 255, 0])


def test_custom_legend_from_config():
    legend = legend_for({"path": "x", "crop_classes": [7, 8], "nodata": 99})
    np.testing.assert_array_equal(recode(np.array([7, 8, 1, 99]), legend), [1, 1, 0, 255])


def _utm_tile(size=64, res=10.0):
    return Tile(ix=136, iy=850, crs="EPSG:32614", resolution=res, size=size)


def test_finer_product_in_other_crs_matches_independent_warp(raster_writer, tmp_path):
    """A 10 m-ish lon/lat product onto a 20 m UTM tile: crop fraction as an independent GDAL warp."""
    tile = _utm_tile(size=64, res=20.0)
    rng = np.random.default_rng(1)
    deg = 1 / 12000
    from rasterio.warp import transform_bounds

    west, south, east, north = transform_bounds(tile.crs, "EPSG:4326", *tile.bounds)
    west, north = west - 0.002, north + 0.002
    transform = Affine(deg, 0, west, 0, -deg, north)
    blocks = rng.choice([10, 30, 40], size=(20, 20), p=[0.3, 0.3, 0.4])
    values = np.kron(blocks, np.ones((9, 9), np.uint8)).astype(np.uint8)
    path = raster_writer("wc.tif", values, transform=transform, crs="EPSG:4326", nodata=0)
    out = product_on_tile(str(path), PRODUCTS["esa-worldcover"], tile)
    ref = np.zeros(tile.shape, np.float32)
    reproject((values == 40).astype(np.float32), ref, src_transform=transform, src_crs="EPSG:4326",
              dst_transform=tile.transform, dst_crs=tile.crs, resampling=Resampling.average)
    covered = out != 255
    assert covered.mean() > 0.9
    assert abs(np.mean(out[covered] == 1) - np.mean(ref[covered] >= 0.5)) < 0.01


def test_product_not_covering_tile_is_nodata(raster_writer):
    transform = Affine(10, 0, 0, 0, -10, 100)
    path = raster_writer("far.tif", np.full((10, 10), 40, np.uint8), transform=transform, crs="EPSG:32614")
    out = product_on_tile(str(path), PRODUCTS["esa-worldcover"], _utm_tile())
    assert (out == 255).all()


def test_real_worldcover_window_onto_utm_grid():
    """The real ESA WorldCover 2021 tile (São Tomé), read by window only, onto a UTM 10 m grid."""
    path = shared_fixture("glc", "esa-worldcover-2021", "ESA_WorldCover_10m_2021_v200_N00E006_Map.tif")
    from pyproj import Transformer

    # farmland of São Tomé island near 6.7 E, 0.38 N (UTM zone 32N); a 2.56 km tile there
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True).transform(6.7, 0.38)
    tile = Tile(ix=int(x // 2560), iy=int(y // 2560), crs="EPSG:32632", resolution=10.0, size=256)
    out = product_on_tile(str(path), PRODUCTS["esa-worldcover"], tile)
    ref = np.zeros(tile.shape, np.float32)
    valid = np.zeros(tile.shape, np.float32)
    with rasterio.open(path) as src:
        from rasterio.warp import transform_bounds
        from rasterio.windows import from_bounds

        b = transform_bounds(tile.crs, src.crs, *tile.bounds)
        win = from_bounds(*b, transform=src.transform).round_offsets().round_lengths()
        data = src.read(1, window=win)
        wt = src.window_transform(win)
    reproject((data == 40).astype(np.float32), ref, src_transform=wt, src_crs="EPSG:4326",
              dst_transform=tile.transform, dst_crs=tile.crs, resampling=Resampling.average)
    reproject((data != 0).astype(np.float32), valid, src_transform=wt, src_crs="EPSG:4326",
              dst_transform=tile.transform, dst_crs=tile.crs, resampling=Resampling.average)
    covered = out != 255
    if not covered.any():
        pytest.skip("the chosen tile is over the ocean in this fixture")
    expected = (ref / np.maximum(valid, 1e-6))[covered] >= 0.5
    assert abs(np.mean(out[covered] == 1) - np.mean(expected)) < 0.01


def _independent_crop_fraction(path, legend, tile, resampling):
    """Crop share on the tile by a plain GDAL warp of the recoded product (not cropmap's code path)."""
    with rasterio.open(path) as src:
        recoded = recode(src.read(1), legend).astype(np.float32)
        recoded[recoded == 255] = np.nan
        dst = np.full(tile.shape, np.nan, np.float32)
        reproject(recoded, dst, src_transform=src.transform, src_crs=src.crs, src_nodata=np.nan,
                  dst_transform=tile.transform, dst_crs=tile.crs, dst_nodata=np.nan, resampling=resampling)
    return dst


def _kansas_tile(size, res, dx=0.0):
    from pyproj import Transformer

    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32614", always_xy=True).transform(-97.07 + dx, 39.28)
    extent = size * res
    return Tile(ix=int(x // extent), iy=int(y // extent), crs="EPSG:32614", resolution=res, size=size)


@pytest.mark.parametrize("name,product_type", [("2021_30m_cdls.tif", "usda-cdl"),
                                                ("2021_cultivated_layer.tif", "usda-cdl-cultivated")])
def test_real_cdl_onto_utm_10m_grid(name, product_type):
    """Real USDA CDL 2021 (EPSG:5070, 30 m) onto a UTM 10 m tile: nearest, as a plain GDAL warp."""
    path = shared_fixture("glc", "usda-cdl-2021", name)
    tile = _kansas_tile(512, 10.0)
    out = product_on_tile(str(path), PRODUCTS[product_type], tile)
    ref = _independent_crop_fraction(path, PRODUCTS[product_type], tile, Resampling.nearest)
    covered = out != 255
    assert covered.mean() > 0.99
    share = np.mean(out[covered] == 1)
    assert 0.05 < share < 0.95
    assert abs(share - np.nanmean(ref[covered] >= 0.5)) < 0.01


def test_real_cdl_onto_coarser_grid_takes_crop_fraction():
    """CDL at 30 m onto a 90 m UTM grid: crop where at least half the source pixels are crop."""
    path = shared_fixture("glc", "usda-cdl-2021", "2021_cultivated_layer.tif")
    tile = _kansas_tile(64, 90.0)
    out = product_on_tile(str(path), PRODUCTS["usda-cdl-cultivated"], tile)
    ref = _independent_crop_fraction(path, PRODUCTS["usda-cdl-cultivated"], tile, Resampling.average)
    covered = (out != 255) & ~np.isnan(ref)
    assert covered.mean() > 0.5
    assert abs(np.mean(out[covered] == 1) - np.mean(ref[covered] >= 0.5)) < 0.01


def test_real_cdl_grid_straddling_the_product_edge():
    """A tile half outside the CDL clip: outside is no data, inside matches the warp."""
    path = shared_fixture("glc", "usda-cdl-2021", "2021_cultivated_layer.tif")
    with rasterio.open(path) as src:
        from rasterio.warp import transform_bounds

        west = transform_bounds(src.crs, "EPSG:4326", *src.bounds)[0]
    tile = _kansas_tile(256, 10.0, dx=west + 97.07 - 0.001)  # centred just inside the west edge
    out = product_on_tile(str(path), PRODUCTS["usda-cdl-cultivated"], tile)
    ref = _independent_crop_fraction(path, PRODUCTS["usda-cdl-cultivated"], tile, Resampling.nearest)
    covered = out != 255
    assert 0.1 < covered.mean() < 0.9
    assert np.array_equal(covered, ~np.isnan(ref)) or abs(covered.mean() - np.mean(~np.isnan(ref))) < 0.01
    both = covered & ~np.isnan(ref)
    assert abs(np.mean(out[both] == 1) - np.mean(ref[both] >= 0.5)) < 0.01


def test_product_defined_in_config_runs_through_the_labels_step(tmp_path, raster_writer):
    """A product unknown to the registry, its legend given in config, through `cropmap labels`."""
    import json

    from cropmap.cli import main
    from cropmap.config import validate_config
    from cropmap.grid import block_id

    tile = _utm_tile(size=32)
    values = np.array([[7, 8, 3, 0]] * 32 * 8, np.uint8).reshape(32, 32)
    path = raster_writer("mine.tif", values, transform=tile.transform, crs=tile.crs, nodata=0)
    grid = {"aoi": {"bbox": bbox_inside(tile)}, "crs": tile.crs, "resolution": 10, "tile_size": 32}
    consensus = validate_config({"areas": {"a": {"aoi": grid["aoi"], "glc": {"m": {"type": "esa-worldcover", "path": "m"}},
                                           "season": {"start": "2023-03-01", "end": "2023-10-31"},
                                           "stac": {"catalog": "c.json"}}}})["consensus"]
    settings = {"grid": grid, "block_tiles": 4, "consensus": dict(consensus, min_voters=1),
                "products": {"mine": {"path": str(path), "crop_classes": [7, 8], "nodata": 0}}}
    out = tmp_path / "out.tif"
    assert main(["labels", "--settings", json.dumps(settings), "--block", block_id(tile, 4), "--out", str(out)]) == 0
    with rasterio.open(out) as src:
        assert src.descriptions[3] == "product:mine" and src.transform == tile.transform
        recoded = src.read(4)
        consensus_label = src.read(1)
    np.testing.assert_array_equal(consensus_label[values == 7][:4], [1, 1, 1, 1])  # one voter suffices
    np.testing.assert_array_equal(np.unique(recoded[values == 7]), [1])
    np.testing.assert_array_equal(np.unique(recoded[values == 3]), [0])
    np.testing.assert_array_equal(np.unique(recoded[values == 0]), [255])


def _split_product(tmp_path, tile):
    """A WorldCover-like product as two tiles that meet in the middle of `tile`."""
    from rasterio.warp import transform_bounds

    west, south, east, north = transform_bounds(tile.crs, "EPSG:4326", *tile.bounds)
    deg = 1 / 12000
    west, north = west - 0.003, north + 0.003
    width = int((east - west + 0.006) / deg)
    height = int((north - south + 0.006) / deg)
    rng = np.random.default_rng(5)
    values = np.kron(rng.choice([30, 40], size=(height // 9 + 1, width // 9 + 1)), np.ones((9, 9)))[:height, :width]
    values = values.astype(np.uint8)
    half = width // 2
    paths = []
    for k, (c0, c1) in enumerate([(0, half), (half, width)]):
        path = tmp_path / f"wc_part{k}.tif"
        write_raster(path, values[:, c0:c1], transform=Affine(deg, 0, west + c0 * deg, 0, -deg, north), crs="EPSG:4326",
              nodata=0)
        paths.append(path)
    whole = tmp_path / "wc_whole.tif"
    write_raster(whole, values, transform=Affine(deg, 0, west, 0, -deg, north),
                                        crs="EPSG:4326", nodata=0)
    return paths, whole


def test_glob_of_tiles_equals_the_whole_product(tmp_path):
    tile = _utm_tile(size=64, res=20.0)
    parts, whole = _split_product(tmp_path, tile)
    sources = product_sources({"path": str(tmp_path / "wc_part*.tif")}, tile)
    assert sources == [str(p) for p in parts]
    from_parts = product_on_tile(sources, PRODUCTS["esa-worldcover"], tile)
    from_whole = product_on_tile(str(whole), PRODUCTS["esa-worldcover"], tile)
    assert (from_parts != 255).all()
    np.testing.assert_array_equal(from_parts, from_whole)


def test_product_items_from_a_static_stac_catalog(tmp_path):
    """Product tiles found through a STAC catalog (the same code path as a STAC API)."""
    import datetime as dt

    import pystac
    from shapely.geometry import box, mapping

    tile = _utm_tile(size=64, res=20.0)
    parts, whole = _split_product(tmp_path, tile)
    catalog = pystac.Catalog(id="glc", description="product tiles")
    collection = pystac.Collection(id="esa-worldcover", description="tiles", extent=pystac.Extent(
        pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]])))
    catalog.add_child(collection)
    for k, path in enumerate(parts):
        with rasterio.open(path) as src:
            geom = box(*src.bounds)
        item = pystac.Item(id=f"part{k}", geometry=mapping(geom), bbox=list(geom.bounds),
                           datetime=dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc), properties={})
        item.add_asset("map", pystac.Asset(href=str(path.resolve()), media_type=pystac.MediaType.COG))
        collection.add_item(item)
    catalog.normalize_hrefs(str(tmp_path / "catalog"))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    product = {"stac": {"catalog": str(tmp_path / "catalog" / "catalog.json"), "collection": "esa-worldcover",
                        "asset": "map", "datetime": "2021"}}
    sources = product_sources(product, tile)
    assert sorted(sources) == sorted(str(p.resolve()) for p in parts)
    np.testing.assert_array_equal(product_on_tile(sources, PRODUCTS["esa-worldcover"], tile),
                                  product_on_tile(str(whole), PRODUCTS["esa-worldcover"], tile))
