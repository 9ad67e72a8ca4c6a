"""`cropmap <step>`: one sub-command per step of the chain.

Each step takes the settings it depends on as JSON (`--settings`, as produced by
`cropmap.config.settings_json` and read into the step's dataclass of `cropmap.settings`), its input
files and its output paths; each command calls one library function. Errors meant for the user
are printed as one line, without a traceback, and exit with status 1.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import time

from cropmap.conventions import available_cores
from cropmap.acquisition.credentials import RedactingFilter, redact
from cropmap.errors import CropmapError, DataError

log = logging.getLogger("cropmap")


def _settings(args, step: str):
    from cropmap.settings import parse_settings

    return parse_settings(step, args.settings)


def cmd_demo(args) -> None:
    from cropmap.demo.area import make_demo

    make_demo(settings=_settings(args, "demo"), out_dir=args.out_dir)


def cmd_demo_config(args) -> None:
    from cropmap.demo.area import write_demo_area_config

    write_demo_area_config(name=args.name, tiles=args.tiles, seed=args.seed, out_path=args.out)
    print(f"demo area {args.name!r} of {args.tiles} x {args.tiles} tiles -> {args.out}")


def cmd_search(args) -> None:
    from cropmap.acquisition.search import search_to_file

    items = search_to_file(settings=_settings(args, "search"), out_path=args.out)
    print(f"{len(items)} items -> {args.out}")


def cmd_sits(args) -> None:
    from cropmap.acquisition.sits import tile_cube_step

    cube = tile_cube_step(settings=_settings(args, "sits"), items_path=args.items, tile_id=args.tile, out_path=args.out)
    print(f"tile {args.tile}: {cube.sizes['time']} composites from {cube.attrs['scenes_loaded']} scenes "
          f"({cube.attrs['scenes_skipped']} skipped), {int(cube['never_observed'].sum())} pixels never observed"
          f"{' (NO CLEAR OBSERVATION: the tile is flagged)' if cube.attrs['no_clear_observation'] else ''} -> {args.out}")


def cmd_labels(args) -> None:
    from cropmap.labels.blocks import labels_step

    summary = labels_step(settings=_settings(args, "labels"), block=args.block, out_path=args.out)
    print(f"block {args.block}: {summary['tiles']} tiles, labelled {summary['labelled_share']:.1%}, "
          f"crop share of labels {summary['crop_share']:.1%} -> {args.out}")


def cmd_label_quality(args) -> None:
    from cropmap.labels.quality import label_quality

    summary = label_quality(settings=_settings(args, "label_quality"), label_paths=args.labels, out_json=args.out,
                            out_png=args.plot)
    print(f"labelled {summary['labelled_fraction']:.1%} of the area; label accuracy "
          f"{summary.get('accuracy', {}).get('consensus', float('nan')):.3f}")


def _torch_threads() -> int:
    """Use the job's cores for torch; returns how many patch-loading processes go beside it."""
    import torch

    threads = available_cores()
    torch.set_num_threads(threads)
    return min(4, threads // 2)


def cmd_patches(args) -> None:
    from cropmap.learning.patches import write_block_patches

    written = write_block_patches(kind=args.kind, cube_paths=args.cubes, label_paths=args.labels, block=args.block,
                                  settings=_settings(args, f"{args.kind}_patches"), out_path=args.out,
                                  own_labels_path=args.own_labels)
    print(f"block {args.block}: {sum(written.values())} {args.kind} patches from {len(written)} tiles -> {args.out}")


def _stores(paths):
    from cropmap.learning.patches import PatchStore

    return [PatchStore.open(path) for path in paths]


def _season_stores(paths, settings):
    """The area's own stores, and (season start, stores) of each of `settings.other_seasons`, whose
    stores end the list of `paths` in that order."""
    own = len(paths) - sum(season["stores"] for season in settings.other_seasons)
    if own < 1:
        raise DataError(f"--patches: {len(paths)} stores, fewer than the other seasons' "
                        f"{len(paths) - own} and one of the area's own")
    stores, other_seasons = _stores(paths), []
    start = own
    for season in settings.other_seasons:
        other_seasons.append((season["season_start"], stores[start:start + season["stores"]]))
        start += season["stores"]
    return stores[:own], other_seasons


def cmd_pretrain(args) -> None:
    from cropmap.learning.training import pretrain

    workers = _torch_threads()
    settings = _settings(args, "pretrain")
    own, other_seasons = _season_stores(args.patches, settings)
    result = pretrain(stores=own, settings=settings, out_path=args.out, curve_csv=args.curve_csv,
                      curve_png=args.curve_png, workers=workers, other_seasons=other_seasons)
    print(f"pretraining done: {result}")


def cmd_train(args) -> None:
    from cropmap.learning.training import train_step

    workers = _torch_threads()
    result = train_step(settings=_settings(args, "train"), stores=_stores(args.patches), pretrained_path=args.pretrained,
                        out_path=args.out, metrics_csv=args.metrics_csv, curves_png=args.curves_png, workers=workers)
    print(f"training done: {result}")


def cmd_predict(args) -> None:
    from cropmap.mapping.predict import predict_step

    _torch_threads()
    predict_step(settings=_settings(args, "predict"), cube_paths=args.cubes, model_path=args.model, block=args.block,
                 out_path=args.out)
    print(f"predicted block {args.block} ({len(args.cubes)} tiles) -> {args.out}")


def cmd_mosaic(args) -> None:
    from cropmap.mapping.predict import mosaic_step

    grid = mosaic_step(settings=_settings(args, "mosaic"), block_paths=args.tiles, map_path=args.map,
                       probability_path=args.probability, legend_png=args.legend)
    print(f"mosaic of {len(args.tiles)} blocks, {grid.shape[1]} x {grid.shape[0]} px -> {args.map}")


def cmd_assess(args) -> None:
    from cropmap.assessment.metrics import assess

    table = assess(settings=_settings(args, "assess"), map_path=args.map, extra_maps=dict(args.extra_map or []),
                   label_paths=args.labels, out_json=args.out, out_table=args.table, out_csv=args.csv,
                   out_per_tile=args.per_tile, out_confusion_png=args.confusion_png)
    print(table)


def cmd_ablation_table(args) -> None:
    from cropmap.assessment.metrics import ablation_table

    table = ablation_table(settings=_settings(args, "assess"), map_path=args.map, maps=dict(args.extra_map or []),
                           model_paths=args.models, label_paths=args.labels, out_json=args.out, out_table=args.table,
                           out_csv=args.csv, out_per_tile=args.per_tile, out_confusion_png=args.confusion_png)
    print(table)


def cmd_random_forest(args) -> None:
    from cropmap.learning.forest import fit_random_forest, save_forest

    model = fit_random_forest(cube_paths=args.cubes, label_paths=args.labels, settings=_settings(args, "random_forest"),
                              threads=available_cores())
    save_forest(model, args.out)
    print(f"random forest of {len(model['forest'].estimators_)} trees -> {args.out}")


def cmd_random_forest_predict(args) -> None:
    from cropmap.learning.forest import random_forest_predict_step

    random_forest_predict_step(settings=_settings(args, "random_forest_predict"), cube_paths=args.cubes,
                               model_path=args.model, block=args.block, out_path=args.out)
    print(f"random forest on block {args.block} ({len(args.cubes)} tiles) -> {args.out}")


def cmd_ensemble(args) -> None:
    from cropmap.mapping.ensemble import ensemble_step

    ensemble_step(settings=_settings(args, "ensemble"), network_path=args.network, forest_path=args.forest,
                  block=args.block, out_path=args.out)
    print(f"ensemble of the network and the forest on block {args.block} -> {args.out}")


def cmd_quicklook(args) -> None:
    from cropmap.reporting.figures import quicklook

    quicklook(map_path=args.map, probability_path=args.probability, map_png=args.map_png,
              probability_png=args.probability_png)


def cmd_availability(args) -> None:
    from cropmap.reporting.figures import availability

    flagged = availability(cube_paths=args.cubes, out_png=args.png, out_csv=args.csv, out_scenes_csv=args.scenes_csv)
    for record in flagged:
        print(f"tile {record['tile']}: {record['scenes_skipped']} scenes skipped"
              f"{', no clear observation' if record['no_clear_observation'] else ''} (see {args.scenes_csv})")
    print(f"{len(args.cubes)} tiles, {len(flagged)} with skipped scenes or without a clear observation")


def cmd_sample(args) -> None:
    from cropmap.assessment.sampling import sample_map

    points = sample_map(settings=_settings(args, "sample"), map_path=args.map, out_csv=args.csv, out_gpkg=args.gpkg)
    print(f"{len(points)} sample points -> {args.csv}, {args.gpkg}")


def cmd_uncertainty(args) -> None:
    from cropmap.reporting.styles import uncertainty_style
    from cropmap.mapping.uncertainty import write_uncertainty

    write_uncertainty(probability_path=args.probability, out_path=args.out)
    uncertainty_style(args.out)
    if args.png:
        from cropmap.reporting.figures import uncertainty_quicklook

        uncertainty_quicklook(uncertainty_path=args.out, png=args.png)
    print(f"uncertainty -> {args.out}")


def cmd_suggest(args) -> None:
    from cropmap.mapping.uncertainty import suggest_points

    summary = suggest_points(settings=_settings(args, "suggest"), uncertainty_path=args.uncertainty, map_path=args.map,
                             probability_path=args.probability, out_csv=args.csv, out_gpkg=args.gpkg,
                             out_json=args.json)
    shares = summary["map_class_shares"]
    print(f"{summary['points']} of {summary['asked']} points suggested, {summary['min_distance_px']:g} px apart "
          f"(mapped crop {100 * shares['crop']:.0f} %, non-crop {100 * shares['non-crop']:.0f} %) -> {args.csv}")


def cmd_area(args) -> None:
    from cropmap.assessment.sampling import estimate_area

    result = estimate_area(settings=_settings(args, "area"), map_path=args.map, sample_csv=args.sample,
                           labelled_out=args.labelled_out, out_json=args.out, out_csv=args.csv)
    print(f"cropland {result['area'][1]:.0f} ha ± {result['area_ci95'][1]:.0f} ha (95 %), "
          f"mapped {result['mapped_area_ha'][1]:.0f} ha; overall accuracy {result['overall_accuracy']:.3f}")


def cmd_stac_item(args) -> None:
    from cropmap.reporting.stac_item import stac_item_step

    stac_item_step(settings=_settings(args, "stac_item"), map_path=args.map, probability_path=args.probability,
                   model_path=args.model, metrics_path=args.metrics, area_estimate_path=args.area_estimate,
                   area=args.area, out_path=args.out)


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import version

    parser = argparse.ArgumentParser(prog="cropmap", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('cropmap')}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, func, help_):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--settings", required=True, help="the step's settings as JSON")
        p.add_argument("--threads", type=int, help="cores the step may use (default: those of the process)")
        p.set_defaults(func=func)
        return p

    p = add("demo", cmd_demo, "write the synthetic demo study area (STAC catalog, products, reference)")
    p.add_argument("--out-dir", required=True)
    p = sub.add_parser("demo-config", help="write the config of a larger demo area (N x N tiles), to run on its own")
    p.set_defaults(func=cmd_demo_config)
    p.add_argument("--tiles", type=int, default=8, help="tiles along each side (default 8: 64 tiles)")
    p.add_argument("--name", default="demo8x8")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", required=True, help="the YAML file to write")
    p = add("search", cmd_search, "STAC search for the area and season")
    p.add_argument("--out", required=True)
    p = add("sits", cmd_sits, "build one tile's composited time-series cube")
    p.add_argument("--items", required=True)
    p.add_argument("--tile", required=True)
    p.add_argument("--out", required=True)
    p = add("labels", cmd_labels, "every product recoded, and their consensus, on one block of tiles")
    p.add_argument("--block", required=True)
    p.add_argument("--out", required=True)
    p = add("label-quality", cmd_label_quality, "label-quality summary of an area (JSON and plot)")
    p.add_argument("--labels", nargs="+", required=True, help="the blocks' label files")
    p.add_argument("--out", required=True)
    p.add_argument("--plot", required=True)
    p = add("patches", cmd_patches, "draw one block's pretraining or training patches into its patch store")
    p.add_argument("--kind", choices=["pretrain", "train"], required=True)
    p.add_argument("--cubes", nargs="+", required=True, help="the block's tile cubes")
    p.add_argument("--labels", nargs="+", help="the block's label file (training patches)")
    p.add_argument("--own-labels", help="labels of one's own (CSV or vector file, `cropmap.labels.own_labels`; training patches)")
    p.add_argument("--block", required=True)
    p.add_argument("--out", required=True)
    p = add("pretrain", cmd_pretrain, "self-supervised masked pretraining")
    p.add_argument("--patches", nargs="+", required=True,
                   help="the blocks' pretraining patch stores, then those of the settings' other_seasons in order")
    p.add_argument("--out", required=True)
    p.add_argument("--curve-csv", required=True)
    p.add_argument("--curve-png", required=True)
    p = add("train", cmd_train, "weakly supervised training on consensus labels")
    p.add_argument("--patches", nargs="+", required=True, help="the blocks' training patch stores")
    p.add_argument("--pretrained")
    p.add_argument("--out", required=True)
    p.add_argument("--metrics-csv", required=True)
    p.add_argument("--curves-png", required=True)
    p = add("predict", cmd_predict, "predict the tiles of one block")
    p.add_argument("--cubes", nargs="+", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--block", required=True)
    p.add_argument("--out", required=True)
    p = add("mosaic", cmd_mosaic, "mosaic block predictions into COGs")
    p.add_argument("--tiles", nargs="+", required=True, help="the blocks' predictions")
    p.add_argument("--map", required=True)
    p.add_argument("--probability", required=True)
    p.add_argument("--legend", help="also write QGIS styles (<map>.qml, <probability>.qml) and this legend PNG")
    p = add("assess", cmd_assess, "accuracy of the map, the consensus and each product")
    p.add_argument("--map", required=True)
    p.add_argument("--labels", nargs="+", required=True, help="the blocks' label files")
    p.add_argument("--extra-map", nargs=2, action="append", metavar=("NAME", "PATH"),
                   help="another map to assess beside the map (e.g. an ablation variant)")
    p.add_argument("--out", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--csv", required=True)
    p.add_argument("--per-tile", required=True)
    p.add_argument("--confusion-png", required=True)
    p = add("ablation-table", cmd_ablation_table, "the ablation's maps assessed, and summarised over seeds")
    p.add_argument("--map", required=True, help="the main map")
    p.add_argument("--extra-map", nargs=2, action="append", metavar=("VARIANT@SEED", "PATH"))
    p.add_argument("--models", nargs="+", required=True, help="the variants' checkpoints (.../<variant>/seed<n>/model.pt)")
    p.add_argument("--labels", nargs="+", required=True, help="the blocks' label files")
    for name in ("--out", "--table", "--csv", "--per-tile", "--confusion-png"):
        p.add_argument(name, required=True)
    p = add("random-forest", cmd_random_forest, "fit the random forest on monthly medians of a uniform sample of the area's consensus pixels")
    p.add_argument("--cubes", nargs="+", required=True, help="the area's tile cubes")
    p.add_argument("--labels", nargs="+", required=True, help="the blocks' label files")
    p.add_argument("--out", required=True)
    p = add("random-forest-predict", cmd_random_forest_predict, "the random forest's prediction of one block")
    p.add_argument("--cubes", nargs="+", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--block", required=True)
    p.add_argument("--out", required=True)
    p = add("ensemble", cmd_ensemble, "one block's map from the network's and the forest's predictions (weighted mean probability)")
    p.add_argument("--network", required=True, help="the network's block prediction")
    p.add_argument("--forest", required=True, help="the forest's block prediction")
    p.add_argument("--block", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("quicklook", help="PNG quick looks of the map and the probability")
    p.set_defaults(func=cmd_quicklook)
    for name in ("--map", "--probability", "--map-png", "--probability-png"):
        p.add_argument(name, required=True)
    p = sub.add_parser("availability", help="clear observations per tile and composite period")
    p.set_defaults(func=cmd_availability)
    p.add_argument("--cubes", nargs="+", required=True)
    p.add_argument("--png", required=True)
    p.add_argument("--csv", required=True)
    p.add_argument("--scenes-csv", required=True)
    p = add("sample", cmd_sample, "stratified random sample of the map for photo-interpretation")
    p.add_argument("--map", required=True)
    p.add_argument("--csv", required=True)
    p.add_argument("--gpkg", required=True)
    p = sub.add_parser("uncertainty", help="the map's uncertainty (margin, percent) as a COG with a style")
    p.set_defaults(func=cmd_uncertainty)
    p.add_argument("--probability", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--png", help="a quick look of the uncertainty")
    p = add("suggest", cmd_suggest, "points where the map is least certain, to label next")
    for name in ("--uncertainty", "--map", "--probability", "--csv", "--gpkg", "--json"):
        p.add_argument(name, required=True)
    p = add("area", cmd_area, "stratified estimate of accuracy and area from the labelled sample")
    p.add_argument("--map", required=True)
    p.add_argument("--sample", required=True)
    p.add_argument("--labelled-out", required=True, help="where the sample labelled from the reference goes")
    p.add_argument("--out", required=True)
    p.add_argument("--csv", required=True)
    p = add("stac-item", cmd_stac_item, "a STAC item describing the map")
    p.add_argument("--map", required=True)
    p.add_argument("--probability", required=True)
    p.add_argument("--model")
    p.add_argument("--metrics", help="the assessment's metrics.json")
    p.add_argument("--area-estimate", help="the area estimate's area.json")
    p.add_argument("--area", required=True)
    p.add_argument("--out", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    if not sys.stderr.isatty():
        # a log file (Snakemake's `log:`) gets a progress line every 30 s, not every redraw
        os.environ.setdefault("TQDM_MININTERVAL", "30")
    # GDAL's block cache defaults to 5 % of the machine's memory and fills up over a large area's
    # windows: a job's memory would grow with the area (and with the node it lands on)
    os.environ.setdefault("GDAL_CACHEMAX", "64")
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        os.environ["CROPMAP_THREADS"] = str(args.threads)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    start = time.time()
    try:
        args.func(args)
    except CropmapError as err:
        print(f"cropmap {args.command}: error: {redact(str(err))}", file=sys.stderr)
        return 1
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise
        # atomic writes leave no partial output behind: only the cause needs telling
        print(f"cropmap {args.command}: error: the disk is full or the file size limit was reached while "
              f"writing ({err.strerror}: {err.filename or 'output'}); free space and rerun", file=sys.stderr)
        return 1
    log.info("%s finished in %.1f s", args.command, time.time() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
