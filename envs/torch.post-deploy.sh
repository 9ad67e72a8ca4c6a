#!/usr/bin/env bash
# Snakemake runs this inside the new environment, from its working directory (the checkout, when the
# README's commands are followed; else set CROPMAP_SOURCE to the checkout): install the cropmap
# package without dependencies, which the environment file gives. CROPMAP_PIP_ARGS adds pip options
# (tests/test_envs.py passes --dry-run). With sits.cloud_masker: ukis-csmask, add ukis-csmask to geo.yaml.
set -euo pipefail
python -m pip install --no-deps ${CROPMAP_PIP_ARGS:-} -e "${CROPMAP_SOURCE:-$PWD}"
