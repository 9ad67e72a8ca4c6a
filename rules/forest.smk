# The random forest on monthly medians (the fair forest a user would otherwise fit), and the map of
# `predict.method: ensemble`: the network's and the forest's probabilities combined per block. The
# forest is fitted once per area on a uniform sample of its consensus pixels and predicts per block,
# as the network does; the assessment reports it beside the map whatever makes the map.


rule forest:
    input:
        cubes=area_files("sits/{tile}.nc"),
        labels=block_files("labels/{block}.tif"),
    output:
        "results/{area}/forest/model.joblib",
    params:
        settings=step_settings("random_forest"),
    threads: 2
    resources:
        mem_mb=4000,
    log:
        "results/{area}/logs/forest/fit.log",
    benchmark:
        "results/{area}/benchmarks/forest/fit.tsv"
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap random-forest --settings {params.settings:q} --cubes {input.cubes} --labels {input.labels} "
        "--threads {threads} --out {output} > {log} 2>&1"


rule forest_predict:
    input:
        cubes=block_cubes,
        model="results/{area}/forest/model.joblib",
    output:
        "results/{area}/forest/predict/{block}.tif",
    params:
        settings=step_settings("random_forest_predict"),
    threads: 2
    resources:
        mem_mb=3000,
    log:
        "results/{area}/logs/forest/predict/{block}.log",
    benchmark:
        "results/{area}/benchmarks/forest/predict/{block}.tsv"
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap random-forest-predict --settings {params.settings:q} --threads {threads} --cubes {input.cubes} "
        "--model {input.model} --block {wildcards.block} --out {output} > {log} 2>&1"


rule ensemble:
    input:
        network="results/{area}/predict/{block}.tif",
        forest="results/{area}/forest/predict/{block}.tif",
    output:
        "results/{area}/ensemble/predict/{block}.tif",
    params:
        settings=step_settings("ensemble"),
    log:
        "results/{area}/logs/ensemble/{block}.log",
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap ensemble --settings {params.settings:q} --network {input.network} --forest {input.forest} "
        "--block {wildcards.block} --out {output} > {log} 2>&1"


# the maps of the methods that do not make `cropland.tif`, for the assessment to report beside it
use rule mosaic as method_mosaic with:
    wildcard_constraints:
        method="network|forest|ensemble",
    input:
        method_blocks,
    output:
        map="results/{area}/methods/{method}/cropland.tif",
        probability="results/{area}/methods/{method}/cropland_probability.tif",
        map_categories="results/{area}/methods/{method}/cropland.tif.aux.xml",
        map_style="results/{area}/methods/{method}/cropland.qml",
        probability_style="results/{area}/methods/{method}/cropland_probability.qml",
        legend="results/{area}/methods/{method}/cropland_legend.png",
    log:
        "results/{area}/logs/methods/{method}/mosaic.log",
    benchmark:
        "results/{area}/benchmarks/methods/{method}/mosaic.tsv"
