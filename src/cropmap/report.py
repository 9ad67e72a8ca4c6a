"""What a person looks at: quick-look maps, data availability, the confusion matrix, the
stratified sample for photo-interpretation and the area estimate, and the map's STAC item."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from cropmap.assessment import stratified_estimate
from cropmap.errors import DataError
from cropmap.io import atomic_path, write_json

__all__ = ["quicklook", "availability", "confusion_plot", "sample_sizes", "draw_sample", "map_class_counts", "read_labelled_sample",
           "area_estimate", "map_stac_item"]

CLASS_NAMES = ("non-crop", "crop")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def _read_overview(path, max_side: int = 1024) -> tuple[np.ndarray, Any]:
    """Band 1 decimated to at most `max_side` pixels (from the overviews when there are), and the CRS."""
    with rasterio.open(path) as src:
        factor = max(1, int(np.ceil(max(src.width, src.height) / max_side)))
        out_shape = (src.height // factor or 1, src.width // factor or 1)
        return src.read(1, out_shape=out_shape), src.crs


# QGIS reads `<raster name>.qml` beside a raster as its style
_QML = """<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.28.0" styleCategories="Symbology">
  <pipe>
{renderer}
  </pipe>
</qgis>
"""
PROBABILITY_RAMP = ["ffffe5", "d9f0a3", "78c679", "238443", "004529"]  # YlGn, 0 .. 100 %


def map_styles(*, map_path, probability_path, legend_png) -> list[Path]:
    """QGIS styles beside the class map (its classes, colours and names) and the probability map (a
    0-100 % colour ramp), and a legend picture of the classes; returns the paths written."""
    from cropmap.conventions import MAP_CLASSES

    entries = "\n".join(f'        <paletteEntry value="{value}" color="#{colour.lower()}" alpha="255" label="{name}"/>'
                        for value, (name, colour, _) in MAP_CLASSES.items())
    classes = (f'    <rasterrenderer type="paletted" band="1" opacity="1" nodataColor="">\n'
               f"      <rasterTransparency/>\n      <colorPalette>\n{entries}\n      </colorPalette>\n"
               f"    </rasterrenderer>")
    stops = len(PROBABILITY_RAMP) - 1
    items = "\n".join(f'          <item value="{100 * k / stops:g}" color="#{c}" alpha="255" label="{100 * k / stops:g} %"/>'
                      for k, c in enumerate(PROBABILITY_RAMP))
    probability = ('    <rasterrenderer type="singlebandpseudocolor" band="1" opacity="1" classificationMin="0" '
                   'classificationMax="100" nodataColor="">\n      <rastershader>\n'
                   '        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0" '
                   f'minimumValue="0" maximumValue="100">\n{items}\n        </colorrampshader>\n'
                   "      </rastershader>\n    </rasterrenderer>")
    written = []
    for raster, renderer in ((map_path, classes), (probability_path, probability)):
        style = Path(raster).with_suffix(".qml")
        with atomic_path(style) as tmp:
            tmp.write_text(_QML.format(renderer=renderer))
        written.append(style)
    plt = _pyplot()
    from matplotlib.patches import Patch

    fig = plt.figure(figsize=(2.6, 1.2))
    fig.legend(handles=[Patch(facecolor=f"#{colour}", edgecolor="grey", label=f"{name} ({description})")
                        for name, colour, description in MAP_CLASSES.values()]
               + [Patch(facecolor="white", edgecolor="grey", label="no data (255)")], loc="center", frameon=False)
    _save(fig, legend_png)
    return [*written, Path(legend_png)]


def quicklook(*, map_path, probability_path, map_png, probability_png) -> None:
    """PNG quick looks of the class map (with a legend) and the probability map (with a colour bar)."""
    plt = _pyplot()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    classes, crs = _read_overview(map_path)
    fig, ax = plt.subplots(figsize=(7, 7))
    shown = np.where(classes == 255, 2, classes).astype(float)
    colours = ["#8c6d31", "#f2c72e", "#ffffff"]
    ax.imshow(shown, cmap=ListedColormap(colours), vmin=0, vmax=2, interpolation="nearest")
    ax.legend(handles=[Patch(color=colours[1], label="cropland"), Patch(color=colours[0], label="other land"),
                       Patch(facecolor="white", edgecolor="grey", label="no data")], loc="lower right")
    crop_share = np.mean(classes[classes != 255] == 1) if (classes != 255).any() else 0.0
    ax.set_title(f"cropland map ({crop_share:.0%} cropland), {crs}")
    ax.set_axis_off()
    _save(fig, map_png)

    prob, _ = _read_overview(probability_path)
    fig, ax = plt.subplots(figsize=(7.8, 7))
    im = ax.imshow(np.ma.masked_equal(prob, 255), cmap="YlGn", vmin=0, vmax=100, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label="cropland probability (%)")
    ax.set_title("cropland probability")
    ax.set_axis_off()
    _save(fig, probability_png)


def availability(*, cube_paths: Sequence[str], out_png, out_csv, out_scenes_csv,
                 max_rows: int = 60) -> list[dict[str, Any]]:
    """Share of each tile's pixels with a clear observation in each composite period (CSV and plot),
    and each tile's scene record: found, loaded, skipped (with the reasons), no clear observation.
    Returns the scene records of tiles that skipped scenes or saw no clear observation."""
    import xarray as xr

    plt = _pyplot()
    rows, names, dates, scenes = [], [], None, []
    for path in cube_paths:
        with xr.open_dataset(path, engine="netcdf4") as cube:
            clear = (cube["clear_count"].values > 0).mean(axis=(1, 2))
            dates = [str(np.datetime_as_string(t, unit="D")) for t in cube["time"].values]
            rows.append(clear)
            name = str(cube.attrs.get("tile", Path(path).stem))
            skipped = json.loads(cube.attrs.get("skipped_scenes", "[]"))
            scenes.append({"tile": name, "scenes_found": int(cube.attrs.get("scenes_found", 0)),
                           "scenes_loaded": int(cube.attrs.get("scenes_loaded", 0)), "scenes_skipped": len(skipped),
                           "no_clear_observation": int(cube.attrs.get("no_clear_observation", 0)),
                           "skipped": "; ".join(f"{s['item_id']} {s['asset']}: {s['reason']}" for s in skipped)})
            flags = [f"{len(skipped)} skipped"] if skipped else []
            flags += ["NO CLEAR OBSERVATION"] if scenes[-1]["no_clear_observation"] else []
            names.append(f"{name} ({', '.join(flags)})" if flags else name)
    matrix = np.array(rows)
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["tile", *dates])
        for record, row in zip(scenes, matrix):
            writer.writerow([record["tile"], *(f"{v:.3f}" for v in row)])
    with atomic_path(out_scenes_csv) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(scenes[0]))
        writer.writeheader()
        writer.writerows(scenes)
    if len(names) <= max_rows:
        fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(dates)), 1 + 0.4 * len(names)))
        im = ax.imshow(matrix, aspect="auto", cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_title("share of pixels with a clear observation, per tile and composite period")
        fig.colorbar(im, ax=ax, shrink=0.8)
    else:  # thousands of tiles: their spread per period, and how many tiles are flagged
        fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(dates)), 4))
        low, mid, high = np.percentile(matrix, [10, 50, 90], axis=0)
        ax.fill_between(range(len(dates)), low, high, alpha=0.3, label="10th-90th percentile of tiles")
        ax.plot(range(len(dates)), mid, marker=".", label="median tile")
        ax.set_ylim(0, 1)
        ax.legend(loc="lower right")
        flagged = sum(1 for r in scenes if r["scenes_skipped"] or r["no_clear_observation"])
        ax.set_title(f"share of pixels with a clear observation per composite period, {len(names)} tiles "
                     f"({flagged} flagged: see scenes.csv)")
    ax.set_xticks(range(len(dates)), dates, rotation=90, fontsize=7)
    _save(fig, out_png)
    return [r for r in scenes if r["scenes_skipped"] or r["no_clear_observation"]]


def confusion_plot(metrics: Mapping[str, Mapping[str, Any]], out_png) -> None:
    """Confusion matrices (pixel counts, rows = reference) of every source, side by side."""
    plt = _pyplot()
    names = list(metrics)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        cm = np.array(metrics[name]["confusion_matrix"], float)
        share = cm / max(cm.sum(), 1)
        ax.imshow(share, cmap="Greens", vmin=0, vmax=max(share.max(), 1e-9))
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, f"{int(v):,}\n{share[i, j]:.1%}", ha="center", va="center", fontsize=8)
        ax.set_xticks([0, 1], CLASS_NAMES)
        ax.set_yticks([0, 1], CLASS_NAMES)
        ax.set_xlabel("predicted")
        ax.set_ylabel("reference")
        ax.set_title(f"{name}  F1 {metrics[name]['f1']:.3f}")
    fig.tight_layout()
    _save(fig, out_png)


def sample_sizes(mapped_share: Sequence[float], *, expected_users_accuracy: Sequence[float],
                 target_se: float, min_per_stratum: int) -> list[int]:
    """Stratified sample sizes for a target standard error of overall accuracy (Olofsson et al.
    2014, eq. 13: n = (sum W_i S_i / S(O))^2 with S_i = sqrt(U_i (1 - U_i))), allocated in
    proportion to area, then raised to at least `min_per_stratum` per stratum."""
    w = np.asarray(mapped_share, float)
    s = np.sqrt(np.asarray(expected_users_accuracy) * (1 - np.asarray(expected_users_accuracy)))
    total = int(np.ceil((np.sum(w * s) / target_se) ** 2))
    return [int(max(min_per_stratum, round(total * wi))) for wi in w]


def _window_class_counts(src, size: int = 2048) -> tuple[list, np.ndarray]:
    """The windows of a class map (`cropmap.io.iter_windows`) and (n_windows, 2) pixels of class 0 and 1 in each."""
    from cropmap.io import iter_windows

    windows = list(iter_windows(src.height, src.width, size=size))
    counts = np.zeros((len(windows), 2), np.int64)
    for w, window in enumerate(windows):
        classes = src.read(1, window=window)
        counts[w] = np.sum(classes == 0), np.sum(classes == 1)
    return windows, counts


def map_class_counts(map_path) -> np.ndarray:
    """Pixels of class 0 (non-crop) and 1 (crop) of a class map, read window by window."""
    with rasterio.open(map_path) as src:
        return _window_class_counts(src)[1].sum(axis=0)


def draw_sample(*, map_path, sizes: Sequence[int], seed: int, out_csv, out_gpkg,
                window: int = 2048) -> list[dict[str, Any]]:
    """A stratified random sample of pixel centres, strata = map classes (0, 1); written as CSV and
    GeoPackage with an empty `reference` column for photo-interpretation.

    Each stratum's points are drawn without replacement among all its pixels, as ranks in the
    stratum; two passes over the map's windows (count, then pick) keep memory to one window."""
    from pyproj import Transformer

    rng = np.random.default_rng(seed)
    points = []
    with rasterio.open(map_path) as src:
        transform, crs = src.transform, src.crs
        windows, counts = _window_class_counts(src, window)
        to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        for stratum, n in enumerate(sizes):
            total = int(counts[:, stratum].sum())
            if total == 0:
                continue
            ranks = np.sort(rng.choice(total, size=min(n, total), replace=False))
            starts = np.concatenate([[0], np.cumsum(counts[:, stratum])])
            for w in np.unique(np.searchsorted(starts, ranks, side="right") - 1):
                win = windows[w]
                here = ranks[(ranks >= starts[w]) & (ranks < starts[w + 1])] - starts[w]
                flat = np.flatnonzero(src.read(1, window=win).ravel() == stratum)[here]
                rows, cols = np.unravel_index(flat, (win.height, win.width))
                xs, ys = transform * (cols + win.col_off + 0.5, rows + win.row_off + 0.5)
                lons, lats = to_lonlat.transform(xs, ys)
                for x, y, lon, lat in zip(xs, ys, lons, lats):
                    points.append({"id": len(points), "stratum": stratum, "map_class": stratum, "x": float(x),
                                   "y": float(y), "lon": float(lon), "lat": float(lat), "reference": ""})
    fields = ["id", "stratum", "map_class", "x", "y", "lon", "lat", "reference"]
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(points)
    _write_gpkg(points, crs, out_gpkg)
    return points


def _write_gpkg(points, crs, path) -> None:
    import pyogrio.raw
    import shapely

    geometry = shapely.to_wkb(shapely.points([(p["x"], p["y"]) for p in points]))
    field_data = [np.array([p["id"] for p in points], np.int32), np.array([p["stratum"] for p in points], np.int32),
                  np.array([p["lon"] for p in points]), np.array([p["lat"] for p in points]),
                  np.array([p["reference"] for p in points], dtype=object)]
    with atomic_path(path) as tmp:
        pyogrio.raw.write(str(tmp), geometry, field_data, ["id", "stratum", "lon", "lat", "reference"],
                          driver="GPKG", geometry_type="Point", crs=crs.to_wkt(), layer="sample")


def label_sample_from_raster(sample_csv, *, map_crs, reference_path: str, crop_classes: Sequence[int],
                             out_csv) -> None:
    """Fill the `reference` column from a reference raster (for the demo, in place of a person)."""
    from rasterio.warp import transform as warp_transform

    with open(sample_csv) as f:
        points = list(csv.DictReader(f))
    with rasterio.open(reference_path) as src:
        xs, ys = warp_transform(map_crs, src.crs, [float(p["x"]) for p in points], [float(p["y"]) for p in points])
        values = [v[0] for v in src.sample(zip(xs, ys))]
    for p, v in zip(points, values):
        p["reference"] = int(v in crop_classes)
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(points[0]))
        writer.writeheader()
        writer.writerows(points)


def read_labelled_sample(path) -> np.ndarray:
    """Counts matrix (rows = stratum / map class, columns = reference class) of a labelled sample.

    The `reference` column must hold 0 (non-crop) or 1 (crop) for every point."""
    counts = np.zeros((2, 2), int)
    with open(path) as f:
        for row in csv.DictReader(f):
            ref = str(row.get("reference", "")).strip()
            if ref not in ("0", "1"):
                raise DataError(f"{path}: point {row.get('id')} has reference {ref!r}; expected 0 (non-crop) or 1 (crop)")
            counts[int(row["stratum"]), int(ref)] += 1
    return counts


def area_estimate(*, map_path, labelled_sample, out_json, out_csv) -> dict[str, Any]:
    """Stratified estimate of accuracy and cropland area (ha) with 95 % confidence intervals."""
    with rasterio.open(map_path) as src:
        pixel_ha = abs(src.transform.a * src.transform.e) / 10_000
    mapped_ha = [float(n * pixel_ha) for n in map_class_counts(map_path)]
    counts = read_labelled_sample(labelled_sample)
    est = stratified_estimate(counts, mapped_ha)
    result = {"classes": list(CLASS_NAMES), "sample_counts": counts.tolist(), "mapped_area_ha": mapped_ha, **est}
    write_json(out_json, result)
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "mapped area (ha)", "estimated area (ha)", "95% CI (ha)", "user's accuracy",
                         "producer's accuracy"])
        for k, name in enumerate(CLASS_NAMES):
            writer.writerow([name, f"{mapped_ha[k]:.1f}", f"{est['area'][k]:.1f}", f"± {est['area_ci95'][k]:.1f}",
                             f"{est['users_accuracy'][k]:.3f} ± {1.96 * est['users_accuracy_se'][k]:.3f}",
                             f"{est['producers_accuracy'][k]:.3f} ± {1.96 * est['producers_accuracy_se'][k]:.3f}"])
        writer.writerow(["overall accuracy", "", "", "", f"{est['overall_accuracy']:.3f} ± "
                         f"{1.96 * est['overall_accuracy_se']:.3f}", ""])
    return result


STAC_EXTENSIONS = {name: f"https://stac-extensions.github.io/{name}/v1.1.0/schema.json"
                   for name in ("classification", "projection", "raster")}


def map_stac_item(*, map_path, probability_path, checkpoint: Mapping[str, Any] | None, metrics: Mapping[str, Any] | None,
                  area_estimate: Mapping[str, Any] | None = None, area: str, season: Mapping[str, str],
                  out_path) -> dict[str, Any]:
    """A STAC item describing the map and its probability (classification, projection and raster
    extensions), with the model, the accuracy against the reference and the area estimate with its
    95 % confidence interval when they are given; the QGIS styles and the legend as assets."""
    import pystac
    from shapely.geometry import box, mapping

    from cropmap.conventions import MAP_CLASSES, NODATA
    from cropmap.grid import reproject_geometry

    with rasterio.open(map_path) as src:
        footprint = reproject_geometry(box(*src.bounds), src.crs.to_string(), "EPSG:4326")
        epsg, shape, transform = src.crs.to_epsg(), [src.height, src.width], list(src.transform)[:6]
        resolution = abs(src.transform.a)
    start = dt.datetime.fromisoformat(season["start"]).replace(tzinfo=dt.timezone.utc)
    end = dt.datetime.fromisoformat(season["end"]).replace(tzinfo=dt.timezone.utc)
    properties: dict[str, Any] = {
        "start_datetime": start.isoformat(), "end_datetime": end.isoformat(),
        "proj:epsg": epsg, "proj:shape": shape, "proj:transform": transform,
        "cropmap:area": area,
    }
    if checkpoint is not None:
        properties["cropmap:model"] = {"architecture": "STCLN-style spatio-temporal network",
                                       **dict(checkpoint.get("model_config", {})),
                                       "bands": list(checkpoint.get("bands", [])),
                                       "validation_f1": checkpoint.get("val_f1"),
                                       "best_step": checkpoint.get("best_step"),
                                       "decision_threshold": checkpoint.get("threshold")}
    if metrics is not None:
        m = metrics["sources"]["map"]
        properties["cropmap:accuracy"] = {"reference": metrics.get("reference"),
                                          **{k: m[k] for k in ("f1", "precision", "recall", "iou", "oa", "kappa")},
                                          **{k: m[k] for k in ("f1_agree", "f1_disagree") if k in m}}
    if area_estimate is not None:
        crop = list(area_estimate["classes"]).index("crop")
        properties["cropmap:area_estimate"] = {
            "cropland_ha": area_estimate["area"][crop], "cropland_ci95_ha": area_estimate["area_ci95"][crop],
            "mapped_cropland_ha": area_estimate["mapped_area_ha"][crop],
            "overall_accuracy": area_estimate["overall_accuracy"],
            "overall_accuracy_ci95": 1.96 * area_estimate["overall_accuracy_se"],
            "estimator": "stratified (Olofsson et al. 2014)"}
    item = pystac.Item(id=f"cropmap-{area}", geometry=mapping(footprint), bbox=list(footprint.bounds),
                       datetime=None, properties=properties, stac_extensions=list(STAC_EXTENSIONS.values()))
    classes = [{"value": value, "name": name, "description": description, "color_hint": colour}
               for value, (name, colour, description) in MAP_CLASSES.items()]
    classes.append({"value": NODATA, "name": "no-data", "description": "never observed", "nodata": True})
    band = {"nodata": NODATA, "data_type": "uint8", "spatial_resolution": resolution}
    item.add_asset("cropland", pystac.Asset(
        href=Path(map_path).name, media_type=pystac.MediaType.COG, roles=["data"], title="cropland map",
        extra_fields={"classification:classes": classes, "raster:bands": [band]}))
    item.add_asset("probability", pystac.Asset(
        href=Path(probability_path).name, media_type=pystac.MediaType.COG, roles=["data"],
        title="cropland probability (%)", extra_fields={"raster:bands": [{**band, "unit": "percent"}]}))
    for key, path, media, title in (("cropland_style", Path(map_path).with_suffix(".qml"), "text/xml", "QGIS style"),
                                    ("probability_style", Path(probability_path).with_suffix(".qml"), "text/xml",
                                     "QGIS style of the probability"),
                                    ("legend", Path(map_path).with_name(Path(map_path).stem + "_legend.png"),
                                     pystac.MediaType.PNG, "legend")):
        if path.exists():
            item.add_asset(key, pystac.Asset(href=path.name, media_type=media, title=title,
                                             roles=["style" if key.endswith("style") else "overview"]))
    payload = item.to_dict(include_self_link=False, transform_hrefs=False)
    write_json(out_path, payload)
    return payload
