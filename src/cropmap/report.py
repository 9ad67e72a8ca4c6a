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

from cropmap.conventions import CLASS_COLOURS, CLASS_NAMES, CROP, MAP_CLASSES, NODATA, NONCROP
from cropmap.io import atomic_path, write_json
from cropmap.plotting import pyplot, save_png
from cropmap.settings import SeasonSettings, StacItemSettings

__all__ = ["availability", "confusion_plot", "map_stac_item", "map_styles", "quicklook", "stac_item_step", "uncertainty_style"]

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
    entries = "\n".join(f'        <paletteEntry value="{value}" color="#{colour.lower()}" alpha="255" label="{name}"/>'
                        for value, (name, colour, _) in MAP_CLASSES.items())
    classes = (f'    <rasterrenderer type="paletted" band="1" opacity="1" nodataColor="">\n'
               f"      <rasterTransparency/>\n      <colorPalette>\n{entries}\n      </colorPalette>\n"
               f"    </rasterrenderer>")
    written = [_write_style(map_path, classes), _write_style(probability_path, _percent_ramp(PROBABILITY_RAMP))]
    plt = pyplot()
    from matplotlib.patches import Patch

    fig = plt.figure(figsize=(2.6, 1.2))
    fig.legend(handles=[Patch(facecolor=f"#{colour}", edgecolor="grey", label=f"{name} ({description})")
                        for name, colour, description in MAP_CLASSES.values()]
               + [Patch(facecolor="white", edgecolor="grey", label="no data (255)")], loc="center", frameon=False)
    save_png(fig, legend_png)
    return [*written, Path(legend_png)]


# white where the map is sure, dark red where it is a coin toss
UNCERTAINTY_RAMP = ("ffffff", "fdd49e", "fc8d59", "d7301f", "7f0000")


def uncertainty_style(raster_path) -> Path:
    """A QGIS style beside the uncertainty COG: a 0-100 % ramp, white (sure) to dark red."""
    return _write_style(raster_path, _percent_ramp(UNCERTAINTY_RAMP))


def _percent_ramp(colours) -> str:
    stops = len(colours) - 1
    items = "\n".join(f'          <item value="{100 * k / stops:g}" color="#{c}" alpha="255" label="{100 * k / stops:g} %"/>'
                      for k, c in enumerate(colours))
    return ('    <rasterrenderer type="singlebandpseudocolor" band="1" opacity="1" classificationMin="0" '
            'classificationMax="100" nodataColor="">\n      <rastershader>\n'
            '        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0" '
            f'minimumValue="0" maximumValue="100">\n{items}\n        </colorrampshader>\n'
            "      </rastershader>\n    </rasterrenderer>")


def _write_style(raster_path, renderer: str) -> Path:
    style = Path(raster_path).with_suffix(".qml")
    with atomic_path(style) as tmp:
        tmp.write_text(_QML.format(renderer=renderer))
    return style


def quicklook(*, map_path, probability_path, map_png, probability_png) -> None:
    """PNG quick looks of the class map (with a legend) and the probability map (with a colour bar)."""
    plt = pyplot()
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    classes, crs = _read_overview(map_path)
    fig, ax = plt.subplots(figsize=(7, 7))
    shown = np.where(classes == NODATA, 2, classes).astype(float)
    colours = [*CLASS_COLOURS, "#ffffff"]
    ax.imshow(shown, cmap=ListedColormap(colours), vmin=0, vmax=2, interpolation="nearest")
    ax.legend(handles=[Patch(color=colours[CROP], label=MAP_CLASSES[CROP][2]),
                       Patch(color=colours[NONCROP], label=MAP_CLASSES[NONCROP][2]),
                       Patch(facecolor="white", edgecolor="grey", label="no data")], loc="lower right")
    crop_share = np.mean(classes[classes != NODATA] == CROP) if (classes != NODATA).any() else 0.0
    ax.set_title(f"cropland map ({crop_share:.0%} cropland), {crs}")
    ax.set_axis_off()
    save_png(fig, map_png)

    prob, _ = _read_overview(probability_path)
    fig, ax = plt.subplots(figsize=(7.8, 7))
    im = ax.imshow(np.ma.masked_equal(prob, NODATA), cmap="YlGn", vmin=0, vmax=100, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label="cropland probability (%)")
    ax.set_title("cropland probability")
    ax.set_axis_off()
    save_png(fig, probability_png)


def availability(*, cube_paths: Sequence[str], out_png, out_csv, out_scenes_csv,
                 max_rows: int = 60) -> list[dict[str, Any]]:
    """Share of each tile's pixels with a clear observation in each composite period (CSV and plot),
    and each tile's scene record: found, loaded, skipped (with the reasons), no clear observation.
    Returns the scene records of tiles that skipped scenes or saw no clear observation."""
    import xarray as xr

    plt = pyplot()
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
    save_png(fig, out_png)
    return [r for r in scenes if r["scenes_skipped"] or r["no_clear_observation"]]


def confusion_plot(metrics: Mapping[str, Mapping[str, Any]], out_png) -> None:
    """Confusion matrices (pixel counts, rows = reference) of every source, side by side."""
    plt = pyplot()
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
    save_png(fig, out_png)


STAC_EXTENSIONS = {name: f"https://stac-extensions.github.io/{name}/v1.1.0/schema.json"
                   for name in ("classification", "projection", "raster")}


def map_stac_item(*, map_path, probability_path, checkpoint: Mapping[str, Any] | None, metrics: Mapping[str, Any] | None,
                  area_estimate: Mapping[str, Any] | None = None, area: str, season: SeasonSettings,
                  out_path) -> dict[str, Any]:
    """A STAC item describing the map and its probability (classification, projection and raster
    extensions), with the model, the accuracy against the reference and the area estimate with its
    95 % confidence interval when they are given; the QGIS styles and the legend as assets."""
    import pystac
    from shapely.geometry import box, mapping

    from cropmap.grid import reproject_geometry

    with rasterio.open(map_path) as src:
        footprint = reproject_geometry(box(*src.bounds), src.crs.to_string(), "EPSG:4326")
        epsg, shape, transform = src.crs.to_epsg(), [src.height, src.width], list(src.transform)[:6]
        resolution = abs(src.transform.a)
    start = dt.datetime.fromisoformat(season.start).replace(tzinfo=dt.timezone.utc)
    end = dt.datetime.fromisoformat(season.end).replace(tzinfo=dt.timezone.utc)
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


def stac_item_step(*, settings: StacItemSettings, map_path, probability_path, model_path=None, metrics_path=None,
                   area_estimate_path=None, area: str, out_path) -> dict[str, Any]:
    """The `stac_item` step: `map_stac_item` from the files of the model, the assessment's
    metrics.json and the area estimate's area.json (each optional)."""
    from cropmap.io import read_json
    from cropmap.training import load_checkpoint

    return map_stac_item(map_path=map_path, probability_path=probability_path,
                         checkpoint=load_checkpoint(model_path) if model_path else None,
                         metrics=read_json(metrics_path) if metrics_path else None,
                         area_estimate=read_json(area_estimate_path) if area_estimate_path else None,
                         area=area, season=settings.season, out_path=out_path)
