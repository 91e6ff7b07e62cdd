# tables: the papers' tables and figures from every metrics file of the grid.


rule tables:
    input:
        params=PARAMS_INPUT,
        grid=grid_outputs(),
        selected=rnn_selected_outputs,
        nb201_benchmark=nb201_benchmark_input,
    output:
        tables=table_outputs(),
        figures=report(directory(workflow_path(FIGURES)), patterns=["{name}.png"], caption="../report/figures.rst",
                       category="Figures"),
        # index.md is written last.
        index=workflow_path(TABLES, "index.md"),
    log:
        "logs/tables.log",
    params:
        slice=slice_of("tables"),
    threads: res("tables").cpus_per_task
    resources:
        gpu=res("tables").gpu,
        mem_mb=res("tables").mem_mb,
        runtime=res("tables").runtime,
        cpus_per_task=res("tables").cpus_per_task,
    conda:
        "../envs/pipeline.yaml"
    shell:
        "exec python -m pipeline tables --params {input.params:q} --results results"
        " --out $(dirname {output.index:q}) --figures {output.figures:q} > {log:q} 2>&1"
