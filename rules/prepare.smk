# prepare: fix a dataset's splits (write the demo ImageNet tree; sample ImageNet for direct searches) once,
# for every method and seed.


rule prepare:
    input:
        params=PARAMS_INPUT,
        imagenet=prepare_input,
    output:
        # Written last, so its presence means the splits (or the demo tree) are complete.
        manifest=workflow_path(DATA, "manifest.json"),
    log:
        "logs/prepare/{dataset}.log",
    params:
        slice=slice_of("prepare"),
        subgrid="",  # prepare's --subgrid: the main grid has none
    threads: res("prepare").cpus_per_task
    resources:
        gpu=res("prepare").gpu,
        mem_mb=res("prepare").mem_mb,
        runtime=res("prepare").runtime,
        cpus_per_task=res("prepare").cpus_per_task,
    conda:
        "../envs/pipeline.yaml"
    shell:
        "exec python -m pipeline prepare --params {input.params:q} --dataset {wildcards.dataset}"
        " --out $(dirname {output.manifest:q}) {params.subgrid} > {log:q} 2>&1"


# The NAS-Bench-201 sub-grid's prepared data: the same stage, apart from the main grid's (layout DATA_NB201).
# Its cifar10 may search on the benchmark's own halves (prepare.nb201_cifar10_split): the file is an input,
# so replacing it reruns the prepare and everything downstream.
use rule prepare as prepare_nb201 with:
    input:
        params=PARAMS_INPUT,
        split=nb201_split_input,
    params:
        slice=slice_of("prepare_nb201"),
        subgrid=f"--subgrid {NB201}",
    output:
        manifest=workflow_path(DATA_NB201, "manifest.json"),
    log:
        "logs/prepare/nb201/{dataset}.log",
