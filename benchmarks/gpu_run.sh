#!/usr/bin/env bash
# One device call of the GPU run (docs/benchmarks.md, "The GPU run"): run from the repository root
# with .gpu-kit carried (`make gpu-kit` builds it). Installs the carried wheels the image lacks,
# then runs benchmarks.gpu_run under BUDGET_S seconds; what it writes lands in $OUT. Called again
# on the same warm machine it resumes (the models and finished splits stay in .grin/). Arguments
# pass on to benchmarks.gpu_run (e.g. --splits forget10).
set -uo pipefail
OUT=${OUT:?run this through the device tool, which sets OUT}
KIT=${GRIN_GPU_KIT:-.gpu-kit}
wheels=()
for wheel in "$KIT"/wheels/*.whl; do
  case "$wheel" in
    # the image's pyarrow stays if datasets can use it (>= 24); the carried one otherwise
    */pyarrow-*) python3 -c 'import pyarrow, sys; sys.exit(int(pyarrow.__version__.split(".")[0]) < 24)' 2>/dev/null \
                   || wheels+=("$wheel") ;;
    *) wheels+=("$wheel") ;;
  esac
done
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "${wheels[@]}" || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch, transformers, datasets, pyarrow, rouge_score; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "transformers", transformers.__version__, "datasets", datasets.__version__, "pyarrow", pyarrow.__version__)' || exit 1
python3 -m benchmarks.gpu_run --data "$KIT/tofu" --out "$OUT" --budget-s "${BUDGET_S:-400}" "$@" 2>&1 | tee "$OUT/run.log"
exit "${PIPESTATUS[0]}"
