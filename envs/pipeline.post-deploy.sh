#!/usr/bin/env bash
# Run by Snakemake inside the freshly created conda env, from the workflow's working directory (the
# repository root): install this checkout's `pipeline` package, editable, without touching the
# dependencies that envs/pipeline.yaml pinned.
set -euo pipefail
python -m pip install --no-deps --editable .
