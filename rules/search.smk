rule search:
    input:
        stac_catalog,
    output:
        "results/{area}/stac/items.json",
    params:
        settings=step_settings("search"),
    log:
        "results/{area}/logs/search.log",
    benchmark:
        "results/{area}/benchmarks/search.tsv"
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap search --settings {params.settings:q} --out {output} > {log} 2>&1"
