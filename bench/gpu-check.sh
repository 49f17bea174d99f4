#!/usr/bin/env bash
# The one device check for a machine with a real GPU (the team's H200 box, reached through the `run` tool), as a
# single script so a short device lease buys every figure at once. Prepare here first (`npm run gpu:prepare`,
# which fills the git-ignored .gpu/ with Node, Dawn, gpu.js and the bundles below), then on the GPU machine, with
# .gpu carried:   bash bench/gpu-check.sh            (results under $OUT, default ./gpu-check-out)
#
# Stages, each under its own time limit so one slow stage cannot eat the others, each logged to its own file (the
# limits add up to 9 minutes, so the whole check fits one 10-minute device command):
#   1. compiled-vs-interpreter properties on webgpu (props/compiled.test.ts, CLOVE_TEST_BACKENDS=webgpu), with the
#      WGSL contraction templates' own (props/wgsl.ts: every shape class, every tiling, fused epilogues)
#   2. device/runtime properties on webgpu (props/runtime.test.ts)
#   3. contraction kernels alone: matmul 4096³ and every distinct conv of W1 (fwd, fwd+dX+dW), ours vs tfjs-webgpu,
#      TFLOP/s and % of the GPU's fp32 peak (bench/contractions.ts knows H100 SXM/PCIe/NVL and H200)
#   4. micro-benchmarks: ours on webgpu, the naive gpu.js kernels, tfjs-webgpu (same Dawn, same run)
#   5. the W1 training step: ours on webgpu vs tfjs-webgpu (losses compared step by step), and where our step's
#      time goes kernel by kernel (--profile)
#   6. r18-96 (ResNet-18 at 96 px, 776 distinct kernels) on webgpu: compile and three steps, the third profiled
#   7. the paper's ResNet-50 at 224 px (r50-224 preset, plan peak 33.7 GiB) on webgpu: compile, three steps, the
#      third profiled kernel by kernel
# QUICK=1 shrinks every stage (tiny bench sizes, fewer runs and steps): a rehearsal on a software adapter
# (VK_DRIVER_FILES=/usr/share/vulkan/icd.d/lvp_icd.json), not a measurement.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${OUT:-$here/gpu-check-out}" && cd "${OUT:-$here/gpu-check-out}" && pwd)
run="bash $here/.gpu/run.sh"
quick=${QUICK:-0}
[[ -f $here/.gpu/run.sh ]] || { echo "no .gpu/ here: run 'npm run gpu:prepare' first and carry .gpu" >&2; exit 2; }

stage() { # name seconds command...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  printf '%-10s rc=%-3s %4ss  %s\n' "$name" "$rc" $((SECONDS - t0)) "$(grep -E '^ℹ (pass|fail)|^# (pass|fail)' "$out/$name.log" | tr '\n' ' ')" | tee -a "$out/summary.txt"
}

: > "$out/summary.txt"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi'; } | tee -a "$out/summary.txt"
export CLOVE_TEST_BACKENDS=webgpu XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
if [[ $quick == 1 ]]; then
  # r18-96 with the GPU run's own flags, planned only (compiling its 776 distinct kernels on lavapipe takes minutes);
  # the tiny preset runs three profiled steps in the r50 stage's place
  runs=20 tiny=--tiny budget=2 r18=(--preset r18-96 --steps 3 --optim.warmupSteps 1 --data.poolSize 256 --plan) big=(--preset tiny --steps 3 --profile)
else
  runs=50 tiny= budget=6 r18=(--preset r18-96 --steps 3 --optim.warmupSteps 1 --data.poolSize 256 --profile)
  big=(--preset r50-224 --steps 3 --optim.warmupSteps 1 --data.poolSize 256 --profile)
fi
CLOVE_PROP_RUNS=$runs stage props-compiled 100 $run compiled.test.mjs
CLOVE_PROP_RUNS=$runs stage props-runtime 25 $run runtime.test.mjs
stage bench-gemm 80 $run main.mjs gemm --peers webgpu $tiny --budget-s "$budget" --json --out "$out/gemm.json" --md "$out/gemm.md"
stage bench-micro 40 $run main.mjs micro --backend webgpu --peers webgpu --no-torch $tiny --budget-s "$budget" --json --out "$out/micro.json" --md "$out/micro.md"
stage bench-step 70 $run main.mjs step --backend webgpu --peers webgpu --no-torch $tiny --profile --budget-s $((budget * 3)) --json --out "$out/step.json" --md "$out/step.md"
stage pretrain-r18 100 $run cli.mjs pretrain --backend webgpu "${r18[@]}" --out "$out/pretrain-r18"
stage pretrain-r50 130 $run cli.mjs pretrain --backend webgpu "${big[@]}" --out "$out/pretrain-r50"
grep -h 'ours on webgpu' "$out/micro.md" 2>/dev/null | tee -a "$out/summary.txt" # the adapter (or why webgpu was skipped)
grep -h -E '^- (fp32 peak|ours on)|^\| matmul' "$out/gemm.md" 2>/dev/null | tee -a "$out/summary.txt"
grep -h -E '^\| (ours|tfjs)' "$out/step.md" 2>/dev/null | tee -a "$out/summary.txt"
for f in pretrain-r18 pretrain-r50; do echo "== $f"; grep -v '^Warning' "$out/$f.log" | grep -E '^webgpu device granted' | head -1; grep -v '^Warning' "$out/$f.log" | grep -A3 '^profile of' ; grep -v '^Warning' "$out/$f.log" | tail -n 2; done | tee -a "$out/summary.txt"
