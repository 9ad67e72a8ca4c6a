"""The map's STAC item: the class map and its probability with the classification, projection and
raster extensions, the model, the accuracy and the area estimate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import rasterio

from cropmap.conventions import MAP_CLASSES, NODATA
from cropmap.io import write_json
from cropmap.settings import SeasonSettings, StacItemSettings

__all__ = ["map_stac_item", "stac_item_step"]


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
    from cropmap.learning.training import load_checkpoint

    return map_stac_item(map_path=map_path, probability_path=probability_path,
                         checkpoint=load_checkpoint(model_path) if model_path else None,
                         metrics=read_json(metrics_path) if metrics_path else None,
                         area_estimate=read_json(area_estimate_path) if area_estimate_path else None,
                         area=area, season=settings.season, out_path=out_path)
