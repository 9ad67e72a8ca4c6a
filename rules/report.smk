# What a person looks at: quick looks, data availability, the sample and area estimate, the STAC
# item of the map. `snakemake --report report.html` gathers every output marked with report().


rule quicklook:
    input:
        map="results/{area}/cropland.tif",
        probability="results/{area}/cropland_probability.tif",
    output:
        map=report(
            "results/{area}/report/cropland.png",
            caption="../report/cropland.rst",
            category="Map",
            labels={"area": "{area}", "figure": "cropland map"},
        ),
        probability=report(
            "results/{area}/report/probability.png",
            caption="../report/probability.rst",
            category="Map",
            labels={"area": "{area}", "figure": "probability"},
        ),
    log:
        "results/{area}/logs/quicklook.log",
    benchmark:
        "results/{area}/benchmarks/quicklook.tsv"
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap quicklook --map {input.map} --probability {input.probability} "
        "--map-png {output.map} --probability-png {output.probability} > {log} 2>&1"


rule availability:
    input:
        area_files("sits/{tile}.nc"),
    output:
        png=report(
            "results/{area}/report/availability.png",
            caption="../report/availability.rst",
            category="Data",
            labels={"area": "{area}", "figure": "clear observations"},
        ),
        csv="results/{area}/report/availability.csv",
        scenes="results/{area}/report/scenes.csv",
    log:
        "results/{area}/logs/availability.log",
    benchmark:
        "results/{area}/benchmarks/availability.tsv"
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap availability --cubes {input} --png {output.png} --csv {output.csv} "
        "--scenes-csv {output.scenes} > {log} 2>&1"


rule sample:
    input:
        "results/{area}/cropland.tif",
    output:
        csv="results/{area}/assessment/sample.csv",
        gpkg="results/{area}/assessment/sample.gpkg",
    params:
        settings=step_settings("sample"),
    log:
        "results/{area}/logs/sample.log",
    benchmark:
        "results/{area}/benchmarks/sample.tsv"
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap sample --settings {params.settings:q} --map {input} --csv {output.csv} "
        "--gpkg {output.gpkg} > {log} 2>&1"


rule suggest:
    input:
        uncertainty="results/{area}/cropland_uncertainty.tif",
        map="results/{area}/cropland.tif",
        probability="results/{area}/cropland_probability.tif",
    output:
        csv="results/{area}/assessment/suggested.csv",
        gpkg="results/{area}/assessment/suggested.gpkg",
        summary="results/{area}/assessment/suggested.json",
    params:
        settings=step_settings("suggest"),
    log:
        "results/{area}/logs/suggest.log",
    benchmark:
        "results/{area}/benchmarks/suggest.tsv"
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap suggest --settings {params.settings:q} --uncertainty {input.uncertainty} --map {input.map} "
        "--probability {input.probability} --csv {output.csv} --gpkg {output.gpkg} --json {output.summary} "
        "> {log} 2>&1"


rule area_estimate:
    input:
        map="results/{area}/cropland.tif",
        sample="results/{area}/assessment/sample.csv",
        labelled=labelled_sample,
    output:
        json="results/{area}/assessment/area.json",
        csv=report(
            "results/{area}/assessment/area.csv",
            caption="../report/area.rst",
            category="Accuracy",
            labels={"area": "{area}", "table": "area estimate"},
        ),
        labelled="results/{area}/assessment/sample_labelled.csv",
    params:
        settings=step_settings("area"),
    log:
        "results/{area}/logs/area_estimate.log",
    benchmark:
        "results/{area}/benchmarks/area_estimate.tsv"
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap area --settings {params.settings:q} --map {input.map} --sample {input.sample} "
        "--labelled-out {output.labelled} --out {output.json} --csv {output.csv} > {log} 2>&1"


rule stac_item:
    input:
        unpack(accuracy_outputs),
        map="results/{area}/cropland.tif",
        probability="results/{area}/cropland_probability.tif",
        styles=multiext("results/{area}/cropland", ".qml", "_probability.qml", "_legend.png"),
        model="results/{area}/model/model.pt",
    output:
        "results/{area}/cropland.stac.json",
    params:
        settings=step_settings("stac_item"),
        accuracy=lambda wildcards, input: (
            f"--metrics {input.metrics} --area-estimate {input.area_estimate}" if "metrics" in input.keys() else ""
        ),
    log:
        "results/{area}/logs/stac_item.log",
    benchmark:
        "results/{area}/benchmarks/stac_item.tsv"
    conda:
        "../envs/torch.yaml"
    shell:
        "cropmap stac-item --settings {params.settings:q} --map {input.map} --probability {input.probability} "
        "--model {input.model} {params.accuracy} --area {wildcards.area} --out {output} > {log} 2>&1"
