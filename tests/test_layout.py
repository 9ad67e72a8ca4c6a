"""The package's layout: a subpackage per stage, each naming its public functions, no import cycle,
and a command line that starts without the heavy stack."""

import ast
import importlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cropmap

PACKAGE = Path(cropmap.__file__).parent
STAGES = ("acquisition", "labels", "learning", "mapping", "assessment", "reporting", "demo")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """{module: the cropmap modules it imports}, counting imports inside functions too (a lazy import
    is still a dependency), resolved to modules (`from cropmap.labels import products` is a module)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cropmap"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    deps.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("cropmap")}
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def test_no_module_of_the_package_imports_itself_through_others():
    graph = _imports()
    state: dict[str, int] = {}
    cycles = []

    def visit(node, path):
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_every_stage_is_a_subpackage_that_names_its_public_functions():
    for stage in STAGES:
        package = importlib.import_module(f"cropmap.{stage}")
        assert package.__doc__ and package.__all__, stage
        for name in package.__all__:
            assert callable(getattr(package, name)) or name.isupper(), f"cropmap.{stage}.{name}"
        with pytest.raises(AttributeError):
            getattr(package, "no_such_function")
    # every module of a stage is named in its package's docstring, so a reader finds it there
    for stage in STAGES:
        doc = importlib.import_module(f"cropmap.{stage}").__doc__
        for module in (PACKAGE / stage).glob("*.py"):
            if module.stem != "__init__":
                assert f"`{module.stem}`" in doc, f"cropmap.{stage}.{module.stem} is not in its package's docstring"


def test_the_command_line_starts_without_torch_or_the_geospatial_stack():
    code = ("import sys, cropmap.cli; "
            "heavy = [m for m in ('torch', 'rasterio', 'xarray', 'odc.stac', 'sklearn', 'dask') if m in sys.modules]; "
            "print(','.join(heavy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cropmap", "--help"], capture_output=True, check=True)
    assert time.perf_counter() - start < 3.0  # well under a second on an idle machine; CI shares its cores
