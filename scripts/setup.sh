#!/usr/bin/env bash
# Creates .venv beside the repository (once) and installs hifigan into it with
# the pretrained-model extra and the test tools.
#
# torch: a venv that already has torch keeps it (a GPU user's CUDA build, say).
# Otherwise torch==2.13.0 is installed first, which on this project's machines
# is a local CPU wheel, so the package's `torch>=2.1` requirement pulls nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    .venv/bin/python -m pip install -q "torch==${HIFIGAN_TORCH_VERSION:-2.13.0}"
fi
.venv/bin/python -m pip install -q -e ".[pretrained,dev]"
