rule assess:
    input:
        map="results/{area}/cropland.tif",
        methods=lambda wildcards: list(assessed_methods(wildcards).values()),
        labels=block_files("labels/{block}.tif"),
        reference=reference_source,
    output:
        metrics="results/{area}/assessment/metrics.json",
        table="results/{area}/assessment/metrics.md",
        csv=report(
            "results/{area}/assessment/metrics.csv",
            caption="../report/metrics.rst",
            category="Accuracy",
            labels={"area": "{area}", "table": "map vs. consensus vs. products"},
        ),
        per_tile=report(
            "results/{area}/assessment/per_tile.csv",
            caption="../report/per_tile.rst",
            category="Accuracy",
            labels={"area": "{area}", "table": "per tile"},
        ),
        confusion=report(
            "results/{area}/assessment/confusion.png",
            caption="../report/confusion.rst",
            category="Accuracy",
            labels={"area": "{area}", "figure": "confusion matrices"},
        ),
    params:
        settings=step_settings("assess"),
        methods=lambda wildcards: " ".join(f"--extra-map {name} {path}" for name, path in assessed_methods(wildcards).items()),
    log:
        "results/{area}/logs/assess.log",
    benchmark:
        "results/{area}/benchmarks/assess.tsv"
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap assess --settings {params.settings:q} --map {input.map} {params.methods} --labels {input.labels} "
        "--out {output.metrics} --table {output.table} --csv {output.csv} "
        "--per-tile {output.per_tile} --confusion-png {output.confusion} > {log} 2>&1"
