rule predict:
    input:
        cube="results/{area}/sits/{tile}.nc",
        model="results/{area}/model/model.pt",
    output:
        "results/{area}/predict/{tile}.tif",
    params:
        settings=step_settings("predict"),
    threads: 2
    resources:
        mem_mb=lambda wildcards, attempt: 3000 * attempt,
    log:
        "results/{area}/logs/predict/{tile}.log",
    benchmark:
        "results/{area}/benchmarks/predict/{tile}.tsv"
    conda:
        "../envs/torch.yaml"
    shell:
        "cropmap predict --settings {params.settings:q} --cube {input.cube} --model {input.model} "
        "--tile {wildcards.tile} --out {output} > {log} 2>&1"


rule mosaic:
    input:
        area_files("predict/{tile}.tif"),
    output:
        map="results/{area}/cropland.tif",
        probability="results/{area}/cropland_probability.tif",
    params:
        settings=step_settings("predict"),
    log:
        "results/{area}/logs/mosaic.log",
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap mosaic --settings {params.settings:q} --tiles {input} --map {output.map} "
        "--probability {output.probability} > {log} 2>&1"
