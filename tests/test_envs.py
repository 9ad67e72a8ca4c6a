"""The conda environments (`--sdm conda`): third-party packages with pyproject's ranges, torch only
where a rule needs it, and the cropmap package installed by a route that survives Snakemake's copy."""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
import yaml

from conftest import REPO

# conda-forge names of PyPI packages
CONDA_NAMES = {"matplotlib-base": "matplotlib", "pytorch": "torch", "netcdf4": "netcdf4"}


def _spec(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"([A-Za-z0-9_.\-\[\]]+)\s*(.*)", requirement.split("#")[0].strip()).groups()
    return re.sub(r"\[.*\]", "", name).lower(), spec.replace(" ", "")


def _env(name: str) -> dict[str, str]:
    deps = yaml.safe_load((REPO / "envs" / f"{name}.yaml").read_text())["dependencies"]
    assert all(isinstance(d, str) for d in deps), "an env file installs nothing by pip (the package comes by post-deploy)"
    return dict(_spec(d) for d in deps if not d.startswith(("python=", "pip")))


@pytest.mark.parametrize("env", ["geo", "torch"])
def test_env_files_list_third_party_packages_with_pyprojects_ranges(env):
    project = dict(_spec(d) for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    packages = _env(env)
    assert "cropmap" not in packages
    for name, spec in packages.items():
        pypi = CONDA_NAMES.get(name, name)
        assert pypi in project, f"{name} is in envs/{env}.yaml but not a dependency in pyproject.toml"
        assert spec == project[pypi], f"envs/{env}.yaml: {name}{spec}, pyproject.toml: {pypi}{project[pypi]}"
    assert ("pytorch" in packages) == (env == "torch")


def test_rules_that_load_checkpoints_use_the_torch_env():
    rules = {}
    for path in (REPO / "rules").glob("*.smk"):
        # `use rule x as y with:` inherits x's environment
        for rule, body in re.findall(r"^rule (\w+):\n((?:    .*\n|\n)+)", path.read_text(), re.M):
            rules[rule] = body
    torch_rules = {r for r, body in rules.items() if "envs/torch.yaml" in body}
    assert {"pretrain", "train", "predict", "stac_item", "ablation_assess"} <= torch_rules
    for rule, body in rules.items():
        if "cropmap " in body and rule not in torch_rules:
            assert "envs/geo.yaml" in body, rule


@pytest.mark.parametrize("env", ["geo", "torch"])
def test_the_package_resolves_from_snakemakes_copy_of_the_env(env, tmp_path):
    """Snakemake copies envs/<env>.yaml to .snakemake/conda/<hash>.yaml and the post-deploy script
    beside it, then runs the script from its working directory: pip must find the checkout."""
    work = tmp_path / "checkout"
    shutil.copytree(REPO, work, ignore=shutil.ignore_patterns(".venv", "results", ".snakemake", ".git", "*.egg-info"))
    digest = hashlib.md5((REPO / "envs" / f"{env}.yaml").read_bytes()).hexdigest()
    conda = work / ".snakemake" / "conda"
    conda.mkdir(parents=True)
    shutil.copy(REPO / "envs" / f"{env}.yaml", conda / f"{digest}.yaml")
    shutil.copy(REPO / "envs" / f"{env}.post-deploy.sh", conda / f"{digest}.post-deploy.sh")
    env_vars = {**os.environ, "CROPMAP_PIP_ARGS": "--dry-run",
                "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(["bash", str(conda / f"{digest}.post-deploy.sh")], cwd=work, env=env_vars,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "Would install cropmap" in run.stdout, run.stdout[-2000:]
    # what the old env files did: `-e ..` from the copy's folder points at .snakemake/, not the checkout
    old = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "-e", ".."], cwd=conda,
                         capture_output=True, text=True, timeout=600)
    assert old.returncode != 0
