"""Stage 3, labels: global land-cover products recoded to crop / non-crop, their consensus, one's
own labels, and how good the labels are (`rules/labels.smk`).

- `products`: the products' legends (`PRODUCTS`) and their reprojection onto a tile.
- `consensus`: the vote (pure numpy).
- `blocks`: the labels of a block of tiles, as the `labels` step writes them.
- `own_labels`: labels of one's own (points or polygons) that join the consensus.
- `quality`: coverage, class balance and accuracy of the consensus and of each product.
"""

from cropmap._exports import lazy_exports

_EXPORTS = {
    "PRODUCTS": "products", "legend_for": "products", "recode": "products", "product_on_tile": "products",
    "consensus_labels": "consensus", "clean_labels": "consensus",
    "block_labels": "blocks", "labels_step": "blocks", "BlockRasters": "blocks", "read_window": "blocks",
    "read_own_labels": "own_labels", "rasterize_own_labels": "own_labels",
    "label_quality": "quality", "summarise_labels": "quality",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
