"""QGIS styles beside the map's rasters (classes, a probability ramp, an uncertainty ramp) and the
legend picture of the classes."""

from __future__ import annotations

from pathlib import Path

from cropmap.conventions import MAP_CLASSES
from cropmap.io import atomic_path
from cropmap.plotting import pyplot, save_png

__all__ = ["map_styles", "uncertainty_style"]


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
