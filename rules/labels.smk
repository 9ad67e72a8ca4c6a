rule glc:
    input:
        product_source,
    output:
        "results/{area}/glc/{product}/{tile}.tif",
    params:
        settings=step_settings("glc"),
    log:
        "results/{area}/logs/glc/{product}/{tile}.log",
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap glc --settings {params.settings:q} --product {wildcards.product} "
        "--tile {wildcards.tile} --out {output} > {log} 2>&1"


rule consensus:
    input:
        tile_products,
    output:
        "results/{area}/consensus/{tile}.tif",
    params:
        settings=step_settings("consensus"),
    log:
        "results/{area}/logs/consensus/{tile}.log",
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap consensus --settings {params.settings:q} --products {input} --out {output} > {log} 2>&1"
