#!/usr/bin/env bash
# CUDA checks in one run, for a machine with an NVIDIA GPU and PyTorch installed:
#   1. the tests of the operators, spectral toolkit, models, training and comparison
#      (the CUDA-marked ones included, which the CPU-only CI skips);
#   2. the operator benchmark, the block eigensolver (default vs the old single-vector path, block
#      sizes 4-32, ARPACK on the reference method) and the shared sketch, the spectral benchmark and a
#      short training run on the GPU;
#   3. the KPFlow paper's collapse at paper size under the reference protocol (tanh RNN H=256, T=90,
#      10 g values, 10 000 steps at most each; trains on the GPU, ranks the checkpoints on the CPU) — the longest part;
#      skip it with SKIP_PAPER=1.  Pass the reference code's rank curves with REFERENCE_NUMBERS=FILE.json.
# Each part's output goes to stdout and to $OUT (default: ./cuda-checks/).
# Usage:  bash benchmarks/cuda_checks.sh        (from the repository root)
set -u -o pipefail
out=${OUT:-cuda-checks}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
status=0

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$py -c "import torch; print('torch', torch.__version__, '| CUDA', torch.version.cuda, '|', torch.cuda.get_device_name(0))" \
    || { echo "no usable CUDA device"; exit 1; }

step() {  # step NAME COMMAND...: run, tee to $out/NAME.txt, remember failures
    local name=$1; shift
    echo; echo "=== $name: $*"
    local t0=$SECONDS
    "$@" 2>&1 | tee "$out/$name.txt"
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc after $((SECONDS - t0)) s"
    [ "$rc" -eq 0 ] || status=1
}

step tests $py -m pytest -q -p no:cacheprovider -rs \
    tests/kpflow tests/models tests/training/test_training.py tests/compare/test_compare_api.py
step bench_operators $py benchmarks/bench_operators.py --device cuda --repeats 5
step bench_eigsh $py benchmarks/bench_spectral.py --device cuda --repeats 3 --only eigsh --eig-blocks 4 8 16 32
step bench_spectral $py benchmarks/bench_spectral.py --device cuda --repeats 3 --eig-blocks
step train $py benchmarks/train_memorypro.py --device cuda --skip mix --single-steps 1500 \
    --overhead-steps 40 --blocks 4
if [ "${SKIP_PAPER:-0}" != 1 ]; then
    step reproduce_reference_paper $py benchmarks/reproduce_paper.py --protocol reference --paper \
        --out "$out/reproduce" ${REFERENCE_NUMBERS:+--reference-numbers "$REFERENCE_NUMBERS"}
fi
exit $status
