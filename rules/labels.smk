rule labels:
    input:
        area_product_sources,
    output:
        "results/{area}/labels/{block}.tif",
    params:
        settings=step_settings("labels"),
    log:
        "results/{area}/logs/labels/{block}.log",
    benchmark:
        "results/{area}/benchmarks/labels/{block}.tsv"
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap labels --settings {params.settings:q} --block {wildcards.block} --out {output} > {log} 2>&1"


rule label_quality:
    input:
        labels=block_files("labels/{block}.tif"),
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
    log:
        "results/{area}/logs/label_quality.log",
    benchmark:
        "results/{area}/benchmarks/label_quality.tsv"
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap label-quality --settings {params.settings:q} --labels {input.labels} "
        "--out {output.summary} --plot {output.plot} > {log} 2>&1"
