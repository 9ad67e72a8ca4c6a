"""The tiny demo through `snakemake --profile profiles/slurm` on a real single-node SLURM cluster.

The test brings the cluster up itself (tests/slurm/up.sh: Debian's slurm-wlm and munge, one
declared GPU GRES without a device) and stops the daemons afterwards. It runs in CI (CI=true) or
with CROPMAP_TEST_SLURM=1, as root; elsewhere it is skipped with the reason.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from test_e2e import tiny_config

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    if not (os.environ.get("CI") or os.environ.get("CROPMAP_TEST_SLURM")):
        pytest.skip("brings up a SLURM cluster with apt: runs in CI or with CROPMAP_TEST_SLURM=1")
    if os.geteuid() != 0:
        pytest.skip("bringing up SLURM needs root")
    pytest.importorskip("snakemake_executor_plugin_slurm")
    state = tmp_path_factory.mktemp("slurm")
    up = subprocess.run(["bash", str(REPO / "tests/slurm/up.sh"), str(state)], capture_output=True, text=True,
                        timeout=600)
    if up.returncode != 0 and ("Unable to locate package" in up.stderr or "Could not resolve" in up.stderr):
        pytest.skip(f"slurm-wlm / munge cannot be installed here: {up.stderr.strip()[-300:]}")
    assert up.returncode == 0, up.stdout + up.stderr
    yield state
    subprocess.run(["bash", str(REPO / "tests/slurm/down.sh"), str(state)], timeout=60)


def ci_profile(workdir: Path) -> Path:
    """The project's SLURM profile with its placeholders filled for the single-node test cluster."""
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    profile["default-resources"]["slurm_partition"] = "debug"
    del profile["default-resources"]["slurm_account"]
    profile["set-resources"] = {rule: {**res, "mem_mb": 1000, "runtime": 10}
                                for rule, res in profile["set-resources"].items()}
    profile["default-resources"]["mem_mb"] = 1000
    profile.update({
        "slurm-no-account": True,
        # without slurmdbd, sacct fails and the plugin would poll forever: ask squeue instead
        "slurm-status-command": "squeue",
        "slurm-init-seconds-before-status-checks": 2,
        "latency-wait": 5,
        "jobs": 4,
        "retries": 0,
        "cores": os.cpu_count(),  # one node of the test cluster
        "resources": {"mem_mb": 8000},
    })
    out = workdir / "ci-profile"
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump(profile))
    return out


def test_tiny_demo_on_slurm_with_gpu_requests(slurm_cluster, tmp_path):
    workdir = tmp_path / "tiny"
    workdir.mkdir()
    shutil.copy(REPO / "Snakefile", workdir)
    for folder in ("rules", "envs", "report"):
        shutil.copytree(REPO / folder, workdir / folder)
    (workdir / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    profile = ci_profile(workdir)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    try:
        # a hung status loop must not hang CI: a hard time limit around the whole run
        run = subprocess.run(["timeout", "-s", "KILL", "900", sys.executable, "-m", "snakemake",
                              "--profile", str(profile)], cwd=workdir, env=env, capture_output=True, text=True)
    finally:
        subprocess.run(["scancel", "--user", "root"], capture_output=True)
    assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]
    assert (workdir / "results/demo/cropland.tif").exists()

    # every job of this run, as slurmctld remembers it (MinJobAge keeps finished jobs for minutes)
    jobs = [line for line in subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True,
                                            text=True).stdout.splitlines() if f"WorkDir={workdir}" in line]
    rules = {}
    for line in jobs:
        rule = re.search(r"Comment=rule_(\w+?)(?:_wildcards\S*)?(?:\s|$)", line).group(1)
        rules.setdefault(rule, []).append("gpu:1" in line or "gpu=1" in line)
    assert {"demo", "tile_cubes_sits", "labels", "pretrain", "train", "predict"} <= set(rules), rules
    for rule, asks_gpu in rules.items():
        expected = rule in ("pretrain", "train")
        assert all(a == expected for a in asks_gpu), f"{rule}: GPU requested {asks_gpu}, expected {expected}"
