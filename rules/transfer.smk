# transfer: train a genotype's ImageNet network (mobile setting): every grid genotype when grid.transfer
# is true, and always the genotypes of direct ImageNet searches (grid.imagenet_methods).
# The genotype's search dataset stays in the path, so genotypes from different datasets never collide.


rule transfer:
    input:
        params=PARAMS_INPUT,
        genotype=rules.derive.output.genotype,
        imagenet=imagenet_input,
    output:
        history=workflow_path(TRANSFER, "history.csv"),
        metrics=workflow_path(TRANSFER, "metrics.json"),
    log:
        "logs/transfer/{dataset}/{method}/seed{seed}.log",
    # Wall time, peak RSS and CPU load of the job (search cost is a column of every table).
    benchmark:
        "benchmarks/transfer/{dataset}/{method}/seed{seed}.tsv",
    params:
        slice=slice_of("transfer"),
        launch=launcher("transfer"),
    threads: res("transfer").cpus_per_task
    resources:
        gpu=res("transfer").gpu,
        mem_mb=res("transfer").mem_mb,
        runtime=res("transfer").runtime,
        cpus_per_task=res("transfer").cpus_per_task,
    conda:
        "../envs/pipeline.yaml"
    shell:
        "exec {params.launch} transfer --params {input.params:q} --genotype {input.genotype:q}"
        " --seed {wildcards.seed} --restart-on-change --out $(dirname {output.metrics:q}) > {log:q} 2>&1"


# transfer_text: a recurrent cell searched on {dataset} (PTB) trains its language model on the corpus
# grid.rnn.transfer_to ({target}, WikiText-2), when grid.rnn.transfer is true.
rule transfer_text:
    input:
        params=PARAMS_INPUT,
        genotype=rules.derive.output.genotype,
        corpus=text_target_input,
    output:
        history=workflow_path(TRANSFER_TEXT, "history.csv"),
        metrics=workflow_path(TRANSFER_TEXT, "metrics.json"),
    log:
        "logs/transfer/{target}/{dataset}/{method}/seed{seed}.log",
    benchmark:
        "benchmarks/transfer/{target}/{dataset}/{method}/seed{seed}.tsv",
    params:
        slice=slice_of("transfer_text"),
    # One language model in one process, like a recurrent retrain: the retrain request, not ImageNet's.
    threads: res("retrain").cpus_per_task
    resources:
        gpu=res("retrain").gpu,
        mem_mb=res("retrain").mem_mb,
        runtime=res("retrain").runtime,
        cpus_per_task=res("retrain").cpus_per_task,
    conda:
        "../envs/pipeline.yaml"
    shell:
        "exec python -m pipeline transfer --params {input.params:q} --genotype {input.genotype:q}"
        " --seed {wildcards.seed} --target {wildcards.target} --restart-on-change"
        " --out $(dirname {output.metrics:q}) > {log:q} 2>&1"
