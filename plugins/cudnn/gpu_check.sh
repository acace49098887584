#!/usr/bin/env bash
# On a CUDA machine, from the repository root: build the cuDNN plugin, print what it finds,
# run its tests. PYTHON defaults to python3 (the H200 image: /opt/torch/.venv/bin/python3).
set -uo pipefail
cd "$(dirname "$0")/../.."
py="${PYTHON:-python3}"
echo "== build"; start=$(date +%s)
"$py" -m pip install --no-build-isolation --no-deps -e plugins/cudnn 2>&1 | tail -25 || exit 1
echo "build: $(( $(date +%s) - start )) s"
echo "== selfcheck"; "$py" -m jaxrnn_cudnn.selfcheck; sc=$?
echo "== tests"
JAXRNN_REQUIRE_CUDNN=1 "$py" -m pytest tests/test_cudnn.py -q -rfEs -s -p no:cacheprovider 2>&1 | tail -120
rc=${PIPESTATUS[0]}
echo "selfcheck rc=$sc pytest rc=$rc"
exit $(( sc || rc ))
