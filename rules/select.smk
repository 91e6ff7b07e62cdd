# select: the short retrain of every seed's genotype, scored on the search's validation half; the S1-S4
# tables report the best-scoring seed per dataset and variant. Runs when grid.select is true, and for the
# recurrent sub-grid when grid.rnn.select is true (a recurrent cell's language model, scored by validation
# perplexity on its corpus: DARTS' selection protocol). A checkpoint: the recurrent sub-grid's full retrain
# and transfer are then asked for the selected seed only (rules/common.smk, rnn_outputs), known once every
# seed's select job has finished.


checkpoint select:
    input:
        params=PARAMS_INPUT,
        genotype=rules.derive.output.genotype,
        manifest=rules.search.input.manifest,
    output:
        # metrics.json is written last; checkpoint.pt stays undeclared so retries resume (see search.smk).
        history=workflow_path(SELECT, "history.csv"),
        metrics=workflow_path(SELECT, "metrics.json"),
    log:
        "logs/select/{dataset}/{method}/seed{seed}.log",
    benchmark:
        "benchmarks/select/{dataset}/{method}/seed{seed}.tsv",
    params:
        slice=slice_of("select"),
        launch=launcher("select"),
    threads: res("select").cpus_per_task
    resources:
        gpu=res("select").gpu,
        mem_mb=res("select").mem_mb,
        runtime=res("select").runtime,
        cpus_per_task=res("select").cpus_per_task,
    conda:
        "../envs/pipeline.yaml"
    shell:
        "exec {params.launch} select --params {input.params:q} --genotype {input.genotype:q}"
        " --dataset {wildcards.dataset} --seed {wildcards.seed} --restart-on-change"
        " --out $(dirname {output.metrics:q}) > {log:q} 2>&1"
