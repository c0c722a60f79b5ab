#!/usr/bin/env bash
# One device call of the GPU benches and tests, run from the checkout root on the lent GPU machine:
#   bash bench/gpu/device.sh tests "sft:shipped@2,shipped@4" "grpo:lean" "sft7b:offload@1"
#   bash bench/gpu/device.sh "gen:eval,vision@1,8,32"   (generate vs reasonkit.generation, one process)
#   bash bench/gpu/device.sh "attn:1,8,32"               (decode attention kernels, bench/gpu/decode_attention.py)
#   bash bench/gpu/device.sh agree                       (generate vs itself in bf16, bench/gpu/greedy_agreement.py)
# Needs `.whl/` carried: the wheels of ../shared/gpu/make-wheels.sh, plus head.tar (git archive of HEAD: tests,
# bench, recipes, pyproject.toml) and plain_hf_baseline.py, which bench/gpu/pack.sh adds. Everything runs from
# /tmp/rk against the installed reasonkit wheel (committed code only). Logs land in $OUT.
set -uo pipefail
root=$(pwd)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  "$root"/.whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTORCH_ALLOC_CONF=expandable_segments:True TOKENIZERS_PARALLELISM=false \
  PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
mkdir -p /tmp/rk && tar -xf "$root/.whl/head.tar" -C /tmp/rk && cd /tmp/rk || exit 1
base="$root/.whl/plain_hf_baseline.py"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, deepspeed; print('torch', torch.__version__, 'transformers', transformers.__version__, 'deepspeed', deepspeed.__version__)" 2>&1 | tail -1
for step in "$@"; do
  echo "===== $step $(date -u +%H:%M:%S)"
  case "$step" in
    tests) timeout "${TESTS_TIMEOUT:-240}" python3 -m pytest -m gpu tests/test_gpu.py -p no:cacheprovider -q -x ${TESTS_K:+-k "$TESTS_K"} \
             2>&1 | tee "$OUT/pytest_gpu.log" | grep -v "^\s*$" | tail -25 ;;
    sft:*) python3 bench/gpu/sft.py --baseline "$base" --configs "${step#sft:}" ${SFT_ARGS:-} 2>&1 \
             | tee -a "$OUT/bench_sft.log" | grep -v '^\[.*{' ;;
    sftnp:*) python3 bench/gpu/sft.py --configs "${step#sftnp:}" ${SFT_ARGS:-} 2>&1 \
             | tee -a "$OUT/bench_sft.log" | grep -v '^\[.*{' ;;
    sft7b:*) python3 bench/gpu/sft.py --shape qwen2.5-vl-7b --baseline "$base" --plain-mbs 1,2 \
             --configs "${step#sft7b:}" 2>&1 | tee -a "$OUT/bench_sft7b.log" | grep -v '^\[.*{' ;;
    grpo:*) python3 bench/gpu/grpo.py --baseline "$base" --configs "${step#grpo:}" ${GRPO_ARGS:-} 2>&1 \
             | tee -a "$OUT/bench_grpo.log" | grep -v '^\[.*{' ;;
    gen:*) spec=${step#gen:}; mode=auto  # gen:SECTIONS[@BATCHES][:MODE], e.g. gen:eval,vision@1,8,32 gen:grpo
           if [[ $spec == *:* ]]; then mode=${spec##*:}; spec=${spec%:*}; fi
           batches=1,8,32; if [[ $spec == *@* ]]; then batches=${spec#*@}; fi
           python3 bench/gpu/generate.py --sections "${spec%%@*}" --batches "$batches" --mode "$mode" \
             ${GEN_ARGS:-} 2>&1 | tee -a "$OUT/bench_generate.log" ;;
    agree) python3 bench/gpu/greedy_agreement.py 2>&1 | tee -a "$OUT/bench_agreement.log" ;;
    attn:*) python3 bench/gpu/decode_attention.py --batches "${step#attn:}" 2>&1 | tee -a "$OUT/bench_attention.log" ;;
    grponp:*) python3 bench/gpu/grpo.py --configs "${step#grponp:}" ${GRPO_ARGS:-} 2>&1 \
             | tee -a "$OUT/bench_grpo.log" | grep -v '^\[.*{' ;;
  esac
done
echo "===== end $(date -u +%H:%M:%S)"
