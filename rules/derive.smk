# derive: the genotype JSON of a finished search.


rule derive:
    input:
        params=PARAMS_INPUT,
        summary=rules.search.output.summary,
    output:
        genotype=workflow_path(GENOTYPE),
    log:
        "logs/derive/{dataset}/{method}/seed{seed}.log",
    params:
        slice=slice_of("derive"),
    threads: res("derive").cpus_per_task
    resources:
        gpu=res("derive").gpu,
        mem_mb=res("derive").mem_mb,
        runtime=res("derive").runtime,
        cpus_per_task=res("derive").cpus_per_task,
    conda:
        "../envs/pipeline.yaml"
    shell:
        "exec python -m pipeline derive --params {input.params:q} --search-dir $(dirname {input.summary:q})"
        " --out {output.genotype:q} > {log:q} 2>&1"
