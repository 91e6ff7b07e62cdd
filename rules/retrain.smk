# retrain: train a genotype's evaluation network from scratch and test it.
# With resources.retrain.gpu > 1 the stage runs under torchrun (DDP, one process per GPU).


rule retrain:
    input:
        params=PARAMS_INPUT,
        genotype=rules.derive.output.genotype,
        manifest=rules.search.input.manifest,
    output:
        # metrics.json is written last; checkpoint.pt stays undeclared so retries resume (see search.smk).
        history=workflow_path(RETRAIN, "history.csv"),
        metrics=workflow_path(RETRAIN, "metrics.json"),
    log:
        "logs/retrain/{dataset}/{method}/seed{seed}.log",
    # Wall time, peak RSS and CPU load of the job (search cost is a column of every table).
    benchmark:
        "benchmarks/retrain/{dataset}/{method}/seed{seed}.tsv",
    params:
        slice=slice_of("retrain"),
        launch=launcher("retrain"),
    threads: res("retrain").cpus_per_task
    resources:
        gpu=res("retrain").gpu,
        mem_mb=res("retrain").mem_mb,
        runtime=res("retrain").runtime,
        cpus_per_task=res("retrain").cpus_per_task,
    conda:
        "../envs/pipeline.yaml"
    shell:
        "exec {params.launch} retrain --params {input.params:q} --genotype {input.genotype:q}"
        " --dataset {wildcards.dataset} --seed {wildcards.seed} --restart-on-change"
        " --out $(dirname {output.metrics:q}) > {log:q} 2>&1"
