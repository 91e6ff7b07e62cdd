# search: one method variant on one dataset with one seed.
# With resources.search.gpu > 1 (resources.search_imagenet.gpu for the direct ImageNet searches) the stage
# runs under torchrun (data-parallel search, one process per GPU).


rule search:
    input:
        params=PARAMS_INPUT,
        manifest=data_manifest,
    output:
        # The files the stage rewrites at the end; summary.json comes last. checkpoint.pt is deliberately
        # not an output: Snakemake deletes outputs before a job runs, and a retried or requeued job must
        # find its checkpoint to resume.
        history=workflow_path(SEARCH, "history.csv"),
        arch_weights=workflow_path(SEARCH, "arch_weights.jsonl"),
        architecture=workflow_path(SEARCH, "architecture.json"),
        summary=workflow_path(SEARCH, "summary.json"),
    log:
        "logs/search/{dataset}/{method}/seed{seed}.log",
    # Wall time, peak RSS and CPU load of the job (search cost is a column of every table).
    benchmark:
        "benchmarks/search/{dataset}/{method}/seed{seed}.tsv",
    params:
        slice=slice_of("search"),
        launch=lambda wildcards: launch_command(search_res(wildcards).gpu),
    threads: lambda wildcards: search_res(wildcards).cpus_per_task
    resources:
        gpu=lambda wildcards: search_res(wildcards).gpu,
        mem_mb=lambda wildcards: search_res(wildcards).mem_mb,
        runtime=lambda wildcards: search_res(wildcards).runtime,
        cpus_per_task=lambda wildcards: search_res(wildcards).cpus_per_task,
    conda:
        "../envs/pipeline.yaml"
    shell:
        "exec {params.launch} search --params {input.params:q} --dataset {wildcards.dataset}"
        " --method {wildcards.method} --seed {wildcards.seed} --restart-on-change"
        " --out $(dirname {output.summary:q}) > {log:q} 2>&1"
