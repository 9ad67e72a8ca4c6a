rule pretrain:
    input:
        cubes=area_files("sits/{tile}.nc"),
    output:
        model="results/{area}/model/pretrained.pt",
        curve="results/{area}/model/pretrain_loss.csv",
        plot=report(
            "results/{area}/model/pretrain_loss.png",
            caption="../report/pretrain.rst",
            category="Model",
            labels={"area": "{area}", "figure": "pretraining loss"},
        ),
    params:
        settings=step_settings("pretrain"),
    threads: 2
    resources:
        mem_mb=6000,
        gpu=config["train"]["gpus"],
    log:
        "results/{area}/logs/pretrain.log",
    benchmark:
        "results/{area}/benchmarks/pretrain.tsv"
    conda:
        "../envs/torch.yaml"
    shell:
        "cropmap pretrain --settings {params.settings:q} --cubes {input.cubes} --out {output.model} "
        "--curve-csv {output.curve} --curve-png {output.plot} > {log} 2>&1"


rule train:
    input:
        cubes=area_files("sits/{tile}.nc"),
        labels=block_files("labels/{block}.tif"),
        pretrained="results/{area}/model/pretrained.pt",
    output:
        model="results/{area}/model/model.pt",
        metrics="results/{area}/model/train_metrics.csv",
        plot=report(
            "results/{area}/model/train_curves.png",
            caption="../report/train.rst",
            category="Model",
            labels={"area": "{area}", "figure": "training curves"},
        ),
    params:
        settings=step_settings("train"),
    threads: 2
    resources:
        mem_mb=6000,
        gpu=config["train"]["gpus"],
    log:
        "results/{area}/logs/train.log",
    benchmark:
        "results/{area}/benchmarks/train.tsv"
    conda:
        "../envs/torch.yaml"
    shell:
        "cropmap train --settings {params.settings:q} --cubes {input.cubes} --labels {input.labels} "
        "--pretrained {input.pretrained} --out {output.model} --metrics-csv {output.metrics} "
        "--curves-png {output.plot} > {log} 2>&1"
