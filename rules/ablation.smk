# `snakemake ablation`: what each part of the method contributes, over several training seeds. Each
# variant of cropmap.config.ABLATION_VARIANTS (the full method among them) is trained with every
# seed of `ablation.seeds` in its own folder, from the main pretrained model unless it changes
# pretraining; the random forest is the classical baseline. One table per area gives each variant's
# mean and sd next to the consensus and every product. Cubes, labels and patches are shared.


wildcard_constraints:
    variant="|".join(ABLATION_VARIANTS),
    seed=r"\d+",


rule ablation:
    input:
        [f"results/{area}/ablation/metrics.md" for area in ablation_areas(config)],


use rule pretrain as ablation_pretrain with:
    wildcard_constraints:
        variant="|".join(OWN_PRETRAINING),
    output:
        model="results/{area}/ablation/{variant}/pretrained.pt",
        curve="results/{area}/ablation/{variant}/pretrain_loss.csv",
        plot="results/{area}/ablation/{variant}/pretrain_loss.png",
    params:
        settings=lambda wildcards: settings_json(config, wildcards.area, f"pretrain:{wildcards.variant}"),
    log:
        "results/{area}/logs/ablation/{variant}/pretrain.log",
    benchmark:
        "results/{area}/benchmarks/ablation/{variant}/pretrain.tsv"


use rule train as ablation_train with:
    input:
        patches=block_files("patches/train/{block}.nc"),
        pretrained=ablation_pretrained,
    output:
        model="results/{area}/ablation/{variant}/seed{seed}/model.pt",
        metrics="results/{area}/ablation/{variant}/seed{seed}/train_metrics.csv",
        plot="results/{area}/ablation/{variant}/seed{seed}/train_curves.png",
    params:
        settings=lambda wildcards: settings_json(
            config, wildcards.area, f"train:{wildcards.variant}:{wildcards.seed}"
        ),
    log:
        "results/{area}/logs/ablation/{variant}/seed{seed}/train.log",
    benchmark:
        "results/{area}/benchmarks/ablation/{variant}/seed{seed}/train.tsv"


use rule predict as ablation_predict with:
    input:
        cubes=block_cubes,
        model="results/{area}/ablation/{variant}/seed{seed}/model.pt",
    output:
        "results/{area}/ablation/{variant}/seed{seed}/predict/{block}.tif",
    log:
        "results/{area}/logs/ablation/{variant}/seed{seed}/predict/{block}.log",
    benchmark:
        "results/{area}/benchmarks/ablation/{variant}/seed{seed}/predict/{block}.tsv"


use rule mosaic as ablation_mosaic with:
    wildcard_constraints:
        variant="|".join([*ABLATION_VARIANTS, "random_forest"]),
    input:
        block_files("ablation/{variant}/seed{seed}/predict/{block}.tif"),
    output:
        map="results/{area}/ablation/{variant}/seed{seed}/cropland.tif",
        probability="results/{area}/ablation/{variant}/seed{seed}/cropland_probability.tif",
        map_categories="results/{area}/ablation/{variant}/seed{seed}/cropland.tif.aux.xml",
        map_style="results/{area}/ablation/{variant}/seed{seed}/cropland.qml",
        probability_style="results/{area}/ablation/{variant}/seed{seed}/cropland_probability.qml",
        legend="results/{area}/ablation/{variant}/seed{seed}/cropland_legend.png",
    log:
        "results/{area}/logs/ablation/{variant}/seed{seed}/mosaic.log",
    benchmark:
        "results/{area}/benchmarks/ablation/{variant}/seed{seed}/mosaic.tsv"


use rule forest as ablation_forest with:
    output:
        "results/{area}/ablation/random_forest/seed{seed}/model.joblib",
    params:
        settings=lambda wildcards: settings_json(config, wildcards.area, f"random_forest:{wildcards.seed}"),
    log:
        "results/{area}/logs/ablation/random_forest/seed{seed}/fit.log",
    benchmark:
        "results/{area}/benchmarks/ablation/random_forest/seed{seed}/fit.tsv"


use rule forest_predict as ablation_forest_predict with:
    input:
        cubes=block_cubes,
        model="results/{area}/ablation/random_forest/seed{seed}/model.joblib",
    output:
        "results/{area}/ablation/random_forest/seed{seed}/predict/{block}.tif",
    log:
        "results/{area}/logs/ablation/random_forest/seed{seed}/predict/{block}.log",
    benchmark:
        "results/{area}/benchmarks/ablation/random_forest/seed{seed}/predict/{block}.tsv"


rule ablation_assess:
    input:
        map="results/{area}/cropland.tif",
        maps=lambda wildcards: list(ablation_maps(wildcards).values()),
        models=ablation_models,
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
        maps=lambda wildcards: " ".join(f"--extra-map {name} {path}" for name, path in ablation_maps(wildcards).items()),
    log:
        "results/{area}/logs/ablation/assess.log",
    benchmark:
        "results/{area}/benchmarks/ablation/assess.tsv"
    conda:
        "../envs/torch.yaml"
    shell:
        "cropmap ablation-table --settings {params.settings:q} --map {input.map} {params.maps} "
        "--models {input.models} --labels {input.labels} --out {output.metrics} --table {output.table} "
        "--csv {output.csv} --per-tile {output.per_tile} --confusion-png {output.confusion} > {log} 2>&1"
