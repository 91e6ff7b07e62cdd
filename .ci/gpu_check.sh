#!/usr/bin/env bash
# The fast supernet's checks for a machine with a GPU (none in CI): what a session lent one runs first.
# 1. The equivalence tests whose networks the bench harness builds, on the GPU: the off-CPU routes (one
#    library backward call per conv, BNs of any width channels-last) are exercised nowhere else.
# 2. The issue's bench on the GPU, fp32 and bf16 autocast, against the reference, into $OUT (or results/).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-results/bench}"
# The project's environment where `make setup` made one; on a lent GPU machine, its own python3.
python="${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)}"
mkdir -p "$out"
PIPELINE_TEST_DEVICE=cuda "$python" -m pytest -q -x tests/test_fast_supernet.py \
    -k "agree or genotype" 2>&1 | tail -n 20 || echo "gpu_check: equivalence tests FAILED (the bench runs anyway)"
for precision in fp32 bf16; do
    amp=()
    [[ "$precision" == bf16 ]] && amp=(--amp)
    "$python" -m pipeline bench --device cuda --compare reference --steps 10 --warmup 3 "${amp[@]}" \
        --out "$out/gpu_$precision.json" 2>&1 | tail -n 20
done
