rule assess:
    input:
        map="results/{area}/cropland.tif",
        consensus=area_files("consensus/{tile}.tif"),
        products=all_product_tiles,
        reference=reference_source,
    output:
        metrics="results/{area}/assessment/metrics.json",
        table="results/{area}/assessment/metrics.md",
    params:
        settings=step_settings("assess"),
        products=product_mosaic_args,
    log:
        "results/{area}/logs/assess.log",
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap assess --settings {params.settings:q} --map {input.map} --consensus {input.consensus} "
        "{params.products} --out {output.metrics} --table {output.table} > {log} 2>&1"
