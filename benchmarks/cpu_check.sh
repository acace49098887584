#!/usr/bin/env bash
# The CPU check of the autotuning work in one call, on a quiet machine (nothing else running),
# from a checkout installed by README's test command (jaxrnn, torch, the oneDNN plugin):
#   bash benchmarks/cpu_check.sh [OUT_DIR]
# 1. the machine: CPU model, the vendor jaxrnn's rules read (jaxrnn.kernels.rules.cpu_vendor)
# 2. the standard tuning grid twice (python -m jaxrnn.tune, ~3 min each on 2 cores) into two
#    wisdom files, then BENCHMARKS.md's autotuning table from both (benchmarks.tune_table)
# 3. benchmarks.run's standard, small and long LSTM/GRU/RNN rows, without a table: `auto`
#    (the built-in rules) beside the fused loop, oneDNN and torch
# 4. the minGRU and LRU training step against the LSTM's at T=4096 (benchmarks.families)
# About 15 minutes on 2 cores. STAGES="machine tune run families" picks stages. Outputs land
# in OUT_DIR (default runs/cpu_check): wisdom1.json, wisdom2.json, tune*.log, tune_table.md,
# run/ (results.json, results.md), families.txt. No table is written to the user's cache.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/cpu_check}"
mkdir -p "$out"
py="${PYTHON:-python}"
stages="${STAGES:-machine tune run families}"
export PYTHONUNBUFFERED=1
has() { [[ " $stages " == *" $1 "* ]]; }
stamp() { echo "[cpu_check $(date +%T)] $*"; }

if has machine; then
  stamp "machine"
  grep -m1 "model name" /proc/cpuinfo || true
  echo "cores: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$py" -c "import jax, jaxrnn.kernels.rules as r, jaxrnn.kernels.onednn as o; print('jax', jax.__version__, '| vendor', r.cpu_vendor(), '| oneDNN plugin', o.load() is not None)"
fi

if has tune; then
  for n in 1 2; do
    stamp "tune run $n"
    rm -f "$out/wisdom$n.json"
    "$py" -m jaxrnn.tune --grid standard --wisdom "$out/wisdom$n.json" | tee "$out/tune$n.log"
  done
  "$py" -m benchmarks.tune_table "$out/wisdom2.json" "$out/wisdom1.json" | tee "$out/tune_table.md"
fi

if has run; then
  stamp "benchmarks.run without a table"
  JAXRNN_WISDOM="$out/none.json" "$py" -m benchmarks.run --no-scaling --no-memory \
    --cases standard small long --peers jaxrnn jaxrnn-fused jaxrnn-onednn torch --out "$out/run"
fi

if has families; then
  stamp "linear families at T=4096"
  "$py" -m benchmarks.families --steps 4096 --reps 5 \
    --only lstm "mingru sequential" "lru sequential" | tee "$out/families.txt"
fi
stamp "done"
