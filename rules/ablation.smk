# `snakemake ablation`: what each part of the method contributes. The full method is the main map;
# the variants retrain without parts of it (their own folders), the random forest is the classical
# baseline; one table compares them with the consensus and every product. The cubes, labels and
# the main model are shared, not recomputed.


wildcard_constraints:
    variant="|".join(ABLATION_VARIANTS),


rule ablation:
    input:
        [f"results/{area}/ablation/metrics.md" for area in selected_areas(config) if config["areas"][area].get("reference")],


rule ablation_train:
    input:
        patches=block_files("patches/train/{block}.nc"),
    output:
        model="results/{area}/ablation/{variant}/model.pt",
        metrics="results/{area}/ablation/{variant}/train_metrics.csv",
        plot="results/{area}/ablation/{variant}/train_curves.png",
    params:
        settings=lambda wildcards: settings_json(config, wildcards.area, f"train:{wildcards.variant}"),
    threads: 2
    resources:
        mem_mb=6000,
        gpu=config["train"]["gpus"],
    log:
        "results/{area}/logs/ablation/{variant}/train.log",
    benchmark:
        "results/{area}/benchmarks/ablation/{variant}/train.tsv"
    conda:
        "../envs/torch.yaml"
    shell:
        "cropmap train --settings {params.settings:q} --patches {input.patches} --threads {threads} "
        "--out {output.model} --metrics-csv {output.metrics} --curves-png {output.plot} > {log} 2>&1"


rule ablation_predict:
    input:
        cubes=block_cubes,
        model="results/{area}/ablation/{variant}/model.pt",
    output:
        "results/{area}/ablation/{variant}/predict/{block}.tif",
    params:
        settings=step_settings("predict"),
    threads: 2
    resources:
        mem_mb=3000,
    log:
        "results/{area}/logs/ablation/{variant}/predict/{block}.log",
    conda:
        "../envs/torch.yaml"
    shell:
        "cropmap predict --settings {params.settings:q} --cubes {input.cubes} --model {input.model} "
        "--block {wildcards.block} --out {output} > {log} 2>&1"


rule ablation_mosaic:
    wildcard_constraints:
        variant="|".join([*ABLATION_VARIANTS, "random_forest"]),
    input:
        block_files("ablation/{variant}/predict/{block}.tif"),
    output:
        map="results/{area}/ablation/{variant}/cropland.tif",
        probability="results/{area}/ablation/{variant}/cropland_probability.tif",
    params:
        settings=step_settings("mosaic"),
    log:
        "results/{area}/logs/ablation/{variant}/mosaic.log",
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap mosaic --settings {params.settings:q} --tiles {input} --map {output.map} "
        "--probability {output.probability} > {log} 2>&1"


rule random_forest:
    input:
        patches=block_files("patches/train/{block}.nc"),
    output:
        "results/{area}/ablation/random_forest/model.joblib",
    params:
        settings=step_settings("random_forest"),
    threads: 2
    resources:
        mem_mb=4000,
    log:
        "results/{area}/logs/ablation/random_forest.log",
    benchmark:
        "results/{area}/benchmarks/ablation/random_forest.tsv"
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap random-forest --settings {params.settings:q} --patches {input.patches} --threads {threads} "
        "--out {output} > {log} 2>&1"


rule random_forest_predict:
    input:
        cubes=block_cubes,
        model="results/{area}/ablation/random_forest/model.joblib",
    output:
        "results/{area}/ablation/random_forest/predict/{block}.tif",
    params:
        settings=step_settings("random_forest_predict"),
    resources:
        mem_mb=3000,
    log:
        "results/{area}/logs/ablation/random_forest/predict/{block}.log",
    benchmark:
        "results/{area}/benchmarks/ablation/random_forest/predict/{block}.tsv"
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap random-forest-predict --settings {params.settings:q} --cubes {input.cubes} --model {input.model} "
        "--block {wildcards.block} --out {output} > {log} 2>&1"


rule ablation_assess:
    input:
        map="results/{area}/cropland.tif",
        variants=expand("results/{{area}}/ablation/{variant}/cropland.tif", variant=ABLATION_VARIANTS),
        random_forest="results/{area}/ablation/random_forest/cropland.tif",
        labels=block_files("labels/{block}.tif"),
        reference=reference_source,
    output:
        metrics="results/{area}/ablation/metrics.json",
        table="results/{area}/ablation/metrics.md",
        csv=report(
            "results/{area}/ablation/metrics.csv",
            caption="../report/ablation.rst",
            category="Ablation",
            labels={"area": "{area}", "table": "ablation"},
        ),
        per_tile="results/{area}/ablation/per_tile.csv",
        confusion="results/{area}/ablation/confusion.png",
    params:
        settings=step_settings("assess"),
        variants=lambda wildcards, input: " ".join(
            f"--extra-map {name} {path}"
            for name, path in [*zip(ABLATION_VARIANTS, input.variants), ("random_forest", input.random_forest)]
        ),
    log:
        "results/{area}/logs/ablation/assess.log",
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap assess --settings {params.settings:q} --map {input.map} {params.variants} "
        "--labels {input.labels} --out {output.metrics} --table {output.table} --csv {output.csv} "
        "--per-tile {output.per_tile} --confusion-png {output.confusion} > {log} 2>&1"
