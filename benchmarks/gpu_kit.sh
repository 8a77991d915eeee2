#!/usr/bin/env bash
# Builds .gpu-kit/ (git-ignored): what a device call carries beside the repository - the TOFU files
# and wheels of the packages the device image lacks (the image has torch, transformers, accelerate,
# tokenizers, safetensors, scipy, matplotlib, pandas, xxhash).
# Versions are this venv's, the ones the tests ran. `make gpu-kit`; docs/benchmarks.md, "The GPU run".
set -euo pipefail
PY=${PY:-.venv/bin/python}
TOFU=${GRIN_TOFU_DIR:-../shared/data/tofu}
KIT=.gpu-kit
test -f "$TOFU/full.jsonl" || { echo "no TOFU data in $TOFU (set GRIN_TOFU_DIR)" >&2; exit 1; }
rm -rf "$KIT" && mkdir -p "$KIT/wheels"
cp -r "$TOFU" "$KIT/tofu"
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
pins=()
for name in datasets dill multiprocess pyarrow nltk defusedxml; do pins+=("$name==$(version "$name")"); done
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$tag")
done
# the device's python3 is 3.12: wheels for it, whatever this machine runs
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$KIT/wheels" "${pins[@]}"
# rouge-score is published as a source archive only: build its (pure-Python) wheel here
"$PY" -m pip wheel -q --no-deps -w "$KIT/wheels" "rouge_score==$(version rouge_score)"
ls -1 "$KIT/wheels"
# a device call carries the tracked files and the kit: 64 MiB at most (the device library's README)
travels=$(( $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) + $(du -sb "$KIT" | cut -f1) ))
echo "a device call carries $(( travels / 1048576 )) MiB of its 64 (the repository and $KIT)"
if (( travels > 64 * 1048576 )); then
  echo "over the device tool's 64 MiB: leave the pyarrow wheel out if the image's is >= 24" >&2
  exit 1
fi
