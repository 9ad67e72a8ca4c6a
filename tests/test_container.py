"""The container image's definition, checked without building it (`.ci/container-check` builds and
runs it): the pinned torch is pyproject's, everything the workflow reads is copied in and passes the
.containerignore, what it does not need stays out, and config `container:` reaches the workflow."""

import fnmatch
import re
import subprocess
import sys
import tomllib

from conftest import REPO

CONTAINERFILE = (REPO / "Containerfile").read_text()


def _ignored(path: str) -> bool:
    """Whether the build context leaves `path` out (.containerignore: last matching rule wins)."""
    ignored = False
    for rule in (REPO / ".containerignore").read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negated, pattern = rule.startswith("!"), rule.lstrip("!")
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes) or fnmatch.fnmatch(path, pattern):
            ignored = not negated
    return ignored


def test_image_pins_pyprojects_torch():
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in dependencies if d.startswith("torch"))
    assert f'"{pin}"' in CONTAINERFILE


def test_image_holds_what_the_workflow_reads_and_nothing_else():
    copied = {source for line in CONTAINERFILE.splitlines() if line.startswith("COPY") and "--from" not in line
              for source in line.split()[1:-1]}
    snakefile = (REPO / "Snakefile").read_text()
    includes = {path.split("/")[0] for path in re.findall(r'include: "([^"]+)"', snakefile)}
    read_by_workflow = {"Snakefile", "config.yaml", "report", "envs", *includes}
    assert read_by_workflow <= copied
    for source in copied:
        assert not _ignored(source), f"{source} is copied but .containerignore leaves it out"
    for path in ("tests/test_container.py", "results/demo/cropland.tif", "docs/index.md", ".git/HEAD",
                 "src/cropmap/__pycache__/cli.cpython-311.pyc", "benchmarks/README.md", ".venv/bin/python"):
        assert _ignored(path), f"{path} would be sent to the build"
    for path in ("src/cropmap/cli.py", "src/cropmap/schemas/config.schema.yaml", "rules/common.smk"):
        assert not _ignored(path)


def test_image_runs_as_a_user_with_snakemake_as_entry_point():
    assert re.search(r"^USER (?!root)\w+", CONTAINERFILE, re.M)
    assert "exec snakemake" in CONTAINERFILE and "ENTRYPOINT" in CONTAINERFILE
    assert "ARG BASE=python:3.11-slim-bookworm" in CONTAINERFILE


def test_config_container_is_the_workflows_container(tmp_path):
    """`--config container=...` sets the image of every rule (what `--sdm apptainer` runs them in)."""
    code = (
        "import sys; from snakemake.api import SnakemakeApi; from snakemake.settings.types import *\n"
        "with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:\n"
        "    wf = api.workflow(ResourceSettings(cores=1), ConfigSettings(config={'container': sys.argv[1]}),\n"
        f"                      snakefile=__import__('pathlib').Path({str(REPO / 'Snakefile')!r}),\n"
        f"                      workdir=__import__('pathlib').Path({str(REPO)!r}))\n"
        "    rules = wf._workflow.rules\n"
        "    print(sorted({str(rule.container_img) for rule in rules}))\n"
    )
    images = [subprocess.run([sys.executable, "-c", code, value], capture_output=True, text=True, check=True,
                             cwd=tmp_path).stdout.strip().splitlines()[-1] for value in ("cropmap.sif", "")]
    assert images == ["['cropmap.sif']", "['None']"]
