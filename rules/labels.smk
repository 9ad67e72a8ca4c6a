rule glc:
    input:
        product_source,
    output:
        "results/{area}/glc/{product}/{tile}.tif",
    group:
        "tile_labels"
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
    group:
        "tile_labels"
    params:
        settings=step_settings("consensus"),
        names=lambda wildcards: list(config["areas"][wildcards.area]["glc"]),
    log:
        "results/{area}/logs/consensus/{tile}.log",
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap consensus --settings {params.settings:q} --products {input} --names {params.names} "
        "--out {output} > {log} 2>&1"


rule label_quality:
    input:
        consensus=area_files("consensus/{tile}.tif"),
        products=all_product_tiles,
        reference=reference_source,
    output:
        summary="results/{area}/labels/quality.json",
        plot=report(
            "results/{area}/labels/quality.png",
            caption="../report/label_quality.rst",
            category="Labels",
            labels={"area": "{area}", "figure": "consensus and agreement"},
        ),
    params:
        settings=step_settings("label_quality"),
        products=product_mosaic_args,
    log:
        "results/{area}/logs/label_quality.log",
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap label-quality --settings {params.settings:q} --consensus {input.consensus} "
        "{params.products} --out {output.summary} --plot {output.plot} > {log} 2>&1"
