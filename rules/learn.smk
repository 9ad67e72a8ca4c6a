rule patches:
    input:
        unpack(patch_inputs),
    output:
        "results/{area}/patches/{kind}/{block}.nc",
    params:
        settings=lambda wildcards: settings_json(config, wildcards.area, f"{wildcards.kind}_patches"),
        labels=lambda wildcards, input: f"--labels {input.labels}" if wildcards.kind == "train" else "",
        own_labels=lambda wildcards, input: f"--own-labels {input.own_labels}" if "own_labels" in input.keys() else "",
    resources:
        mem_mb=3000,
    log:
        "results/{area}/logs/patches/{kind}/{block}.log",
    benchmark:
        "results/{area}/benchmarks/patches/{kind}/{block}.tsv"
    conda:
        "../envs/geo.yaml"
    shell:
        "cropmap patches --kind {wildcards.kind} --settings {params.settings:q} --cubes {input.cubes} "
        "{params.labels} {params.own_labels} --block {wildcards.block} --out {output} > {log} 2>&1"


rule pretrain:
    input:
        patches=pretraining_patches,
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
        "cropmap pretrain --settings {params.settings:q} --patches {input.patches} --threads {threads} "
        "--out {output.model} "
        "--curve-csv {output.curve} --curve-png {output.plot} > {log} 2>&1"


rule train:
    input:
        patches=block_files("patches/train/{block}.nc"),
        pretrained=pretrained_checkpoint,
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
        "cropmap train --settings {params.settings:q} --patches {input.patches} --threads {threads} "
        "--pretrained {input.pretrained} --out {output.model} --metrics-csv {output.metrics} "
        "--curves-png {output.plot} > {log} 2>&1"
