rule sits:
    input:
        "results/{area}/stac/items.json",
    output:
        "results/{area}/sits/{tile}.nc",
    params:
        settings=step_settings("sits"),
    threads: 2
    resources:
        mem_mb=3000,
    log:
        "results/{area}/logs/sits/{tile}.log",
    benchmark:
        "results/{area}/benchmarks/sits/{tile}.tsv"
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap sits --settings {params.settings:q} --threads {threads} --items {input} --tile {wildcards.tile} "
        "--out {output} > {log} 2>&1"
