"""Which true land-cover classes a map calls crop, where the products agree and where they disagree.

Usage: python experiments/class_errors.py --area demo_hard results/demo_hard/variants/NAME/seed0 [...]

For each directory of block predictions (`predict_<block>.tif`, as `experiments/run.py` writes them)
prints, per class of the area's `landcover_truth.tif` (written by `cropmap demo` for the demo and
real-label areas, classes named in its tags), the pixels and the share the map calls crop, apart
where the consensus labels the pixel ("agree") and where it does not ("disagree"). A crop class
below 1 or a non-crop class above 0 is where the map errs; two runs side by side show what a change
moved. Diagnosis only: it reads the truth.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import block_rasters  # noqa: E402  (the same block reading as the experiments' scores)

from cropmap.conventions import NODATA  # noqa: E402


def class_shares(area: str, predictions: Path) -> dict[tuple[str, str], tuple[int, float]]:
    """{(class name, "agree" | "disagree"): (pixels, share called crop)} over the run's blocks."""
    reference = Path("results") / area / "demo-data" / "reference" / "landcover_truth.tif"
    with rasterio.open(reference) as src:
        names = {int(key[len("class_"):]): name for key, name in src.tags().items() if key.startswith("class_")}
    counts: dict[tuple[str, str], list[int]] = {}
    for path in sorted(predictions.glob("predict_*.tif")):
        pred, _, consensus, landcover = block_rasters(area, path, reference)  # class 0 and NODATA match no class
        valid = pred != NODATA
        for code, name in names.items():
            for part, where in (("agree", consensus != NODATA), ("disagree", consensus == NODATA)):
                sel = valid & (landcover == code) & where
                count = counts.setdefault((name, part), [0, 0])
                count[0] += int(sel.sum())
                count[1] += int((pred[sel] == 1).sum())
    return {key: (n, crop / n) for key, (n, crop) in counts.items() if n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--area", required=True)
    parser.add_argument("runs", nargs="+", type=Path, help="directories of predict_<block>.tif")
    args = parser.parse_args()
    shares = [class_shares(args.area, run) for run in args.runs]
    keys = sorted(set().union(*shares), key=lambda k: (k[0], k[1]))
    labels = ["/".join(run.parts[-2:]) for run in args.runs]  # variant/seed
    width = max(len(label) for label in labels)
    print(f"{'class':<28} {'where':<9} {'pixels':>8}  " + "  ".join(f"{label:>{width}}" for label in labels))
    for key in keys:
        pixels = max(s.get(key, (0, 0))[0] for s in shares)
        if pixels < 1000:
            continue
        cells = "  ".join(f"{s[key][1]:>{width}.3f}" if key in s else " " * width for s in shares)
        print(f"{key[0]:<28} {key[1]:<9} {pixels:>8,}  {cells}")


if __name__ == "__main__":
    main()
