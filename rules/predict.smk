rule predict:
    input:
        cubes=block_cubes,
        model="results/{area}/model/model.pt",
    output:
        "results/{area}/predict/{block}.tif",
    params:
        settings=step_settings("predict"),
    threads: 2
    resources:
        mem_mb=3000,
        gpu=config["predict"]["gpus"],
    log:
        "results/{area}/logs/predict/{block}.log",
    benchmark:
        "results/{area}/benchmarks/predict/{block}.tsv"
    conda:
        "../envs/torch.yaml"
    shell:
        "cropmap predict --settings {params.settings:q} --threads {threads} --cubes {input.cubes} --model {input.model} "
        "--block {wildcards.block} --out {output} > {log} 2>&1"


rule mosaic:
    input:
        map_blocks,
    output:
        map="results/{area}/cropland.tif",
        probability="results/{area}/cropland_probability.tif",
        map_categories="results/{area}/cropland.tif.aux.xml",
        map_style="results/{area}/cropland.qml",
        probability_style="results/{area}/cropland_probability.qml",
        legend="results/{area}/cropland_legend.png",
    params:
        settings=step_settings("mosaic"),
    log:
        "results/{area}/logs/mosaic.log",
    benchmark:
        "results/{area}/benchmarks/mosaic.tsv"
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap mosaic --settings {params.settings:q} --tiles {input} --map {output.map} "
        "--probability {output.probability} --legend {output.legend} > {log} 2>&1"


rule uncertainty:
    input:
        "results/{area}/cropland_probability.tif",
    output:
        cog="results/{area}/cropland_uncertainty.tif",
        style="results/{area}/cropland_uncertainty.qml",
        png=report(
            "results/{area}/report/uncertainty.png",
            caption="../report/uncertainty.rst",
            category="Map",
            labels={"area": "{area}", "figure": "uncertainty"},
        ),
    log:
        "results/{area}/logs/uncertainty.log",
    benchmark:
        "results/{area}/benchmarks/uncertainty.tsv"
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap uncertainty --probability {input} --out {output.cog} --png {output.png} > {log} 2>&1"
