"""Real Sentinel-2 series of real, labelled parcels: WorldCereal's public extractions.

Two extraction files of `WorldCereal/worldcereal-classification` (MIT licence, data credited in
`cropmap/data/worldcereal/README.md`) are shipped as compact `.npz` copies: for each sample its
monthly L2A reflectance (10 bands, int DN = reflectance * 10000, `MISSING` where the composite had
no clear observation), its `ewoc_code` and its WorldCereal LANDCOVER10 class (cropland = temporary
crops). `cropmap.demo.series` fills the fields of a study area with them (`demo.series`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from cropmap.errors import ConfigError

__all__ = ["BANDS", "CROPLAND_CLASS", "EXTRACTIONS", "MISSING", "ExtractionSeries", "load_extraction",
           "convert_worldcereal_extraction"]

BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
MISSING = 65535  # WorldCereal's no-data value of an optical composite
CROPLAND_CLASS = "temporary_crops"
IGNORED_CLASS = "ignore"  # LANDCOVER10 of codes that say nothing of the land cover
# the shipped extractions: name -> file in cropmap/data/worldcereal/
EXTRACTIONS = {
    "worldcereal-east-africa": "east_africa_2017_monthly.npz",
    "worldcereal-corsica": "corsica_2022_monthly.npz",
}


@dataclass(frozen=True)
class ExtractionSeries:
    """Monthly series of labelled samples: `reflectance` (samples, months, bands) uint16 DN
    (reflectance * 10000, `MISSING` where not observed), `months` the first day of each monthly
    composite, `landcover` the LANDCOVER10 class of each sample, `ewoc_code` WorldCereal's code."""

    name: str
    reflectance: np.ndarray
    months: tuple[dt.date, ...]
    landcover: np.ndarray
    ewoc_code: np.ndarray
    sample_id: np.ndarray

    @property
    def is_crop(self) -> np.ndarray:
        return self.landcover == CROPLAND_CLASS

    def months_in(self, start: dt.date, end: dt.date) -> list[int]:
        """Indices of the months whose 15th falls in [start, end]."""
        return [k for k, m in enumerate(self.months) if start <= m.replace(day=15) <= end]


def load_extraction(name: str) -> ExtractionSeries:
    """One shipped extraction by name (`EXTRACTIONS`), without its LANDCOVER10 `ignore` samples."""
    if name not in EXTRACTIONS:
        raise ConfigError(f"demo.series: unknown extraction {name!r} (expected one of: {', '.join(EXTRACTIONS)})")
    with resources.as_file(resources.files("cropmap") / "data" / "worldcereal" / EXTRACTIONS[name]) as path:
        data = np.load(path, allow_pickle=False)
        keep = data["landcover"] != IGNORED_CLASS
        return ExtractionSeries(
            name=name, reflectance=data["reflectance"][keep],
            months=tuple(dt.date.fromisoformat(str(m)) for m in data["months"]),
            landcover=data["landcover"][keep], ewoc_code=data["ewoc_code"][keep], sample_id=data["sample_id"][keep])


def convert_worldcereal_extraction(parquet_path: str | Path, class_mappings_path: str | Path, out_path: str | Path) -> None:
    """Write the compact `.npz` of a WorldCereal extraction parquet (needs pyarrow; how the shipped
    files were made). Both layouts are read: wide (`OPTICAL-B02-ts0-10m` columns and `start_date`)
    and long (one row per sample and `timestamp`, `S2-L2A-B02` columns). A band the file lacks
    entirely (Corsica's B8A) is taken from the nearest band it has (B08)."""
    import pandas as pd

    landcover10 = json.loads(Path(class_mappings_path).read_text())["LANDCOVER10"]
    table = pd.read_parquet(parquet_path)
    if "timestamp" in table:  # long: a row per sample and month
        table = table.sort_values(["sample_id", "timestamp"])
        months = sorted(pd.to_datetime(table["timestamp"].unique()))
        samples = table.groupby("sample_id", sort=True)
        first = samples.first()
        columns = [f"S2-L2A-{band}" for band in BANDS]
        values = np.stack([np.stack([group[c].to_numpy() if c in group else np.full(len(group), MISSING)
                                     for c in columns], -1) for _, group in samples])
    else:  # wide: a row per sample, ts0..tsN columns from start_date
        first = table.set_index("sample_id").sort_index()
        n = 1 + max(int(c.split("-ts")[1].split("-")[0]) for c in table.columns if c.startswith("OPTICAL-B02-ts"))
        start = pd.Timestamp(str(first["start_date"].iloc[0]))
        months = [start + pd.DateOffset(months=k) for k in range(n)]
        values = np.stack([np.stack([first[next(c for c in first.columns if c.startswith(f"OPTICAL-{band}-ts{k}-"))]
                                     .to_numpy() for band in BANDS], -1) for k in range(n)], 1)
    values = values.astype(np.uint16)
    for b, band in enumerate(BANDS):
        if (values[..., b] == MISSING).all():
            values[..., b] = values[..., BANDS.index("B08")]
    codes = first["ewoc_code"].astype(np.int64).to_numpy()
    landcover = np.array([landcover10.get(str(code), IGNORED_CLASS) for code in codes])
    np.savez_compressed(out_path, reflectance=values, months=np.array([m.date().isoformat() for m in months]),
                        landcover=landcover, ewoc_code=codes, sample_id=first.index.to_numpy().astype(str))
