rule demo:
    output:
        catalog="results/{area}/demo-data/stac/catalog.json",
        products=multiext(
            "results/{area}/demo-data/glc/",
            "worldcover.tif",
            "esri_lulc.tif",
            "glad_cropland.tif",
        ),
        truth="results/{area}/demo-data/reference/cropland_truth.tif",
        points="results/{area}/demo-data/reference/points.csv",
    params:
        settings=step_settings("demo"),
        out_dir=lambda wildcards: f"results/{wildcards.area}/demo-data",
    log:
        "results/{area}/logs/demo.log",
    benchmark:
        "results/{area}/benchmarks/demo.tsv"
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap demo --settings {params.settings:q} --out-dir {params.out_dir} > {log} 2>&1"
