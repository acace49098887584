#!/usr/bin/env bash
# The GPU check in one call, from a fresh copy of the repository on a CUDA machine:
#   bash benchmarks/gpu_check.sh [OUT_DIR]
# 1. builds the optional cuDNN plugin (plugins/cudnn) from source with the machine's packages,
# 2. runs the test suite on the GPU (pytest-xdist when installed; JAXRNN_REQUIRE_CUDNN=1, so a
#    plugin that does not load fails its tests instead of skipping them),
# 3. writes the GPU table (python -m benchmarks.gpu) and the long-T families table.
# Each stage has a time budget in seconds (SELFCHECK_BUDGET 60, CUDNN_TEST_BUDGET 90,
# TEST_BUDGET 120, BENCH_BUDGET 150, FAMILIES_BUDGET 50) so the whole check fits in 8 minutes
# (the full suite needs more on one H200: ~190 s with 12 xdist workers; raise TEST_BUDGET);
# TESTS="tests/test_x.py ..." narrows the test run and
# STAGES="build tests bench families" picks stages. Wheels for packages the machine lacks can
# be put in .whl/ (they are installed into /tmp/site first). Outputs land in OUT_DIR
# (default runs/gpu_check): build.log, cudnn_tests.log, tests.log, gpu.json/.md,
# families.json/.md/.png.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-runs/gpu_check}}"
mkdir -p "$out"
py="${PYTHON:-python3}"
stages="${STAGES:-build tests bench families}"
export PYTHONUNBUFFERED=1
# Several test processes share the one GPU: allocate on demand, not 75% each up front.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
if compgen -G ".whl/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
has() { [[ " $stages " == *" $1 "* ]]; }
stamp() { echo "[gpu_check $(date +%T)] $*"; }

stamp "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$py" -c "import jax, torch; print('jax', jax.__version__, jax.devices(), '| torch', torch.__version__, 'cuDNN', torch.backends.cudnn.version())"

if has build; then
  stamp "build plugins/cudnn"
  start=$SECONDS
  "$py" -m pip install --no-build-isolation --no-deps -v plugins/cudnn >"$out/build.log" 2>&1
  echo "pip install plugins/cudnn: exit $? in $((SECONDS - start)) s"
  tail -n 5 "$out/build.log"
  stamp "plugin self-check"
  timeout -k 10 "${SELFCHECK_BUDGET:-60}" "$py" -m jaxrnn_cudnn.selfcheck
  echo "selfcheck exit $?"
fi

if has tests; then
  stamp "tests (budget ${TEST_BUDGET:-120} s)"
  par=()
  if "$py" -c "import xdist" 2>/dev/null; then par=(-n "${WORKERS:-12}"); fi
  JAXRNN_REQUIRE_CUDNN=1 timeout -k 10 "${CUDNN_TEST_BUDGET:-90}" "$py" -m pytest -q \
    -p no:cacheprovider "${par[@]}" -rfEs tests/test_cudnn.py >"$out/cudnn_tests.log" 2>&1
  echo "pytest tests/test_cudnn.py exit $?"
  grep -E "^(FAILED|ERROR)" "$out/cudnn_tests.log" | head -n 40
  tail -n 3 "$out/cudnn_tests.log"
  # shellcheck disable=SC2086
  JAXRNN_REQUIRE_CUDNN=1 timeout -k 10 "${TEST_BUDGET:-120}" "$py" -m pytest -q -p no:cacheprovider \
    "${par[@]}" -m "${MARKERS:-not slow}" -rfE --ignore=tests/test_cudnn.py ${TESTS:-} >"$out/tests.log" 2>&1
  echo "pytest exit $?"
  grep -E "^(FAILED|ERROR)" "$out/tests.log" | head -n 60
  tail -n 3 "$out/tests.log"
fi

if has bench; then
  stamp "GPU table (budget ${BENCH_BUDGET:-150} s)"
  # shellcheck disable=SC2086
  timeout -k 10 "${BENCH_BUDGET:-150}" "$py" -m benchmarks.gpu --out "$out" ${BENCH_ARGS:-}
  echo "benchmarks.gpu exit $?"
fi

if has families; then
  stamp "families table (budget ${FAMILIES_BUDGET:-50} s)"
  timeout -k 10 "${FAMILIES_BUDGET:-50}" "$py" -m benchmarks.families_table \
    --steps 1024 4096 16384 --reps 3 --out "$out" 2>&1 | tail -n 40
  echo "families_table exit ${PIPESTATUS[0]}"
fi
stamp "done"
