"""Write docs/reference/configuration.md from the config schema (src/cropmap/schemas/config.schema.yaml).

    python docs/config_reference.py          # rewrite the page
    python docs/config_reference.py --check  # exit 1 when the page is stale (tests/test_docs.py does this)

Every key of the schema gets a row: its type, its default, its allowed values and its description;
the sections an area may override for itself are marked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from cropmap.config import AREA_SECTIONS, load_schema

PAGE = Path(__file__).parent / "reference" / "configuration.md"

INTRO = """# Configuration reference

Generated from the schema (`src/cropmap/schemas/config.schema.yaml`) by `python docs/config_reference.py`;
a test fails when this page is stale or a key has no description. A config is checked against the
schema before any job runs, and every default below is filled in then: a key you do not set has
its default. See [Map your own area](../own-area.md) for how the settings are used.

**What an area may override.** The keys under `areas.<name>` describe one study area. Besides
them, an area may hold its own {sections} sections (for example `areas.demo.train.steps: 150`):
they complete the top-level section of the same name for that area alone, and are checked as that
section is.
"""


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref:  # what the node says beside its $ref (a description) completes the definition
        return {**_resolve(schema, schema["$defs"][ref.split("/")[-1]]), **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _type(node: dict[str, Any]) -> str:
    if "enum" in node:
        return "one of the values"
    if "oneOf" in node and "type" not in node:
        return " or ".join(_type(option) for option in node["oneOf"])
    kind = node.get("type", "any")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array" and "items" in node:
        return f"array of {_type(node['items'])}"
    return kind


def _allowed(node: dict[str, Any]) -> str:
    parts = []
    if "enum" in node:
        parts.append(", ".join(f"`{v}`" for v in node["enum"]))
    for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if key in node:
            parts.append(f"{sign} {node[key]}")
    if "pattern" in node:
        parts.append(f"matches `{node['pattern']}`")
    if node.get("minItems"):
        parts.append(f"at least {node['minItems']} items")
    return "; ".join(parts)


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def rows(schema: dict[str, Any], node: dict[str, Any], prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """(dotted key, its schema node) of every key under `node`, depth first, in the schema's order."""
    out = []
    node = _resolve(schema, node)
    for name, child in node.get("properties", {}).items():
        key = f"{prefix}.{name}" if prefix else name
        child = _resolve(schema, child)
        out.append((key, child))
        out += rows(schema, child, key)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        key = f"{prefix}.<name>"
        child = _resolve(schema, extra)
        out.append((key, child))
        out += rows(schema, child, key)
    return out


def render() -> str:
    schema = load_schema()
    sections = ", ".join(f"`{s}`" for s in AREA_SECTIONS)
    lines = [INTRO.format(sections=sections)]
    top = rows(schema, schema, "")
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for key, node in top:  # a section per top-level object; the top level's plain keys together
        first = key.split(".")[0]
        plain = schema["properties"][first].get("type") not in ("object", None)
        groups.setdefault("top level" if plain else first, []).append((key, node))
    for group, entries in groups.items():
        overridable = " (an area may override it: `areas.<name>." + group + "`)" if group in AREA_SECTIONS else ""
        title = group if group == "top level" else f"`{group}`"
        lines.append(f"\n## {title}{overridable}\n")
        lines.append("| key | type | default | allowed | description |")
        lines.append("|---|---|---|---|---|")
        for key, node in entries:
            default = f"`{json.dumps(node['default'])}`" if "default" in node else ""
            lines.append(f"| `{key}` | {_type(node)} | {default} | {_cell(_allowed(node))} | "
                         f"{_cell(node.get('description', ''))} |")
    return "\n".join(lines) + "\n"


def undescribed() -> list[str]:
    """The schema's keys that have no description."""
    schema = load_schema()
    return [key for key, node in rows(schema, schema, "") if not node.get("description")]


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        stale = not PAGE.exists() or PAGE.read_text() != text
        sys.exit(f"{PAGE} is stale: run python docs/config_reference.py" if stale else 0)
    PAGE.write_text(text)
    print(f"{PAGE}: {text.count(chr(10))} lines")
