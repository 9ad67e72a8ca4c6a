"""Write the reference pages: docs/reference/configuration.md from the config schema
(src/cropmap/schemas/config.schema.yaml) and docs/reference/cli.md from `cropmap`'s argument parser.

    python docs/generate_reference.py          # rewrite both pages
    python docs/generate_reference.py --check  # exit 1 when a page is stale (tests/test_docs.py does this)

Every key of the schema gets a row: its type, its default, its allowed values and its description;
the sections an area may override for itself are marked. Every command gets its help and options.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from cropmap.config import AREA_SECTIONS, load_schema

PAGE = Path(__file__).parent / "reference" / "configuration.md"
CLI_PAGE = Path(__file__).parent / "reference" / "cli.md"

INTRO = """# Configuration reference

Generated from the schema (`src/cropmap/schemas/config.schema.yaml`) by `python docs/generate_reference.py`;
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


def render_cli() -> str:
    """The command line reference: every `cropmap` command, its help and its options."""
    import argparse

    from cropmap.cli import build_parser

    parser = build_parser()
    lines = ["# Command line reference", "",
             "Generated from `cropmap`'s argument parser by `python docs/generate_reference.py`. Every rule of the",
             "workflow runs one of these commands (`cropmap <step> --help`), so each step also runs on its own.",
             "A step's `--settings` is the JSON of exactly the settings it depends on, as the rules pass it",
             "(`cropmap.config.settings_json`).", ""]
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in commands._choices_actions}
    for name, sub in commands.choices.items():
        lines += [f"## `cropmap {name}`", "", helps.get(name) or "", ""]
        lines += ["| option | required | help |", "|---|---|---|"]
        for action in sub._actions:
            if not action.option_strings or "--help" in action.option_strings:
                continue
            nargs = " ..." if action.nargs in ("+", "*") else ""
            lines.append(f"| `{', '.join(action.option_strings)}{nargs}` | {'yes' if action.required else ''} | "
                         f"{_cell(action.help or '')} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    pages = {PAGE: render(), CLI_PAGE: render_cli()}
    if "--check" in sys.argv:
        stale = [str(path) for path, text in pages.items() if not path.exists() or path.read_text() != text]
        sys.exit(f"stale: {', '.join(stale)}: run python docs/generate_reference.py" if stale else 0)
    for path, text in pages.items():
        path.write_text(text)
        print(f"{path}: {text.count(chr(10))} lines")
