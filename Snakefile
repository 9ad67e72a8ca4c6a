# cropmap: cropland maps from Sentinel-2 image time series with weak labels from the agreement of
# global land-cover products. `snakemake --cores all` runs every area of config.yaml.
from snakemake.utils import min_version

min_version("9.0")


report: "report/workflow.rst"


configfile: "config.yaml"


include: "rules/common.smk"


# config `container:` (off by default): `snakemake --sdm apptainer` then runs every rule in that image
container: config["container"] or None


# jobs too small to be worth a cluster submission run where Snakemake runs
localrules:
    all,
    ablation,
    search,
    quicklook,
    sample,
    area_estimate,
    stac_item,


rule all:
    input:
        all_outputs(),
    default_target: True


include: "rules/demo.smk"
include: "rules/search.smk"
include: "rules/sits.smk"
include: "rules/labels.smk"
include: "rules/learn.smk"
include: "rules/predict.smk"
include: "rules/forest.smk"
include: "rules/assess.smk"
include: "rules/report.smk"
include: "rules/ablation.smk"
