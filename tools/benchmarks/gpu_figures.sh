#!/usr/bin/env bash
# The GPU figures: the benchmark tools run with --device cuda and small
# time budgets, in one go (one device session of at most ~9 minutes).
#
# Usage: bash tools/benchmarks/gpu_figures.sh [OUT_DIR [STEP ...]]
#   OUT_DIR  where each step writes NAME.md (what it printed), NAME.log
#            (its stderr) and its own files; default work_dirs/gpu_figures
#   STEP     run only these steps (the names below); default: all
# Environment: PYTHON, the interpreter (default: python).
#
# Each step is stopped after its seconds (timeout); OUT_DIR/steps.txt
# lists each step's exit code (124: stopped). Every tool prints its
# machine line first (CPU, GPU, torch, commit).

cd "$(dirname "$0")/../.." || exit 2
out=${1:-work_dirs/gpu_figures}
only=("${@:2}")
python=${PYTHON:-python}

if ! "$python" -c 'import sys, torch
sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_figures.sh: refused: torch.cuda.is_available() is not True" \
    "here; run it on a machine with a CUDA GPU" >&2
  exit 1
fi
mkdir -p "$out" || exit 2
: >"$out/steps.txt"

# step NAME SECONDS TOOL [ARG ...]: run TOOL with its arguments, at most
# SECONDS seconds, its stdout to OUT_DIR/NAME.md, stderr to NAME.log.
step() {
  local name=$1 seconds=$2 tool=$3
  shift 3
  if [ ${#only[@]} -gt 0 ] && [[ " ${only[*]} " != *" $name "* ]]; then
    return 0
  fi
  echo "[$name] $tool $* (at most $seconds s)"
  timeout -k 5 "$seconds" "$python" "$tool" "$@" \
    >"$out/$name.md" 2>"$out/$name.log"
  local code=$?
  echo "$name $code" >>"$out/steps.txt"
  echo "[$name] exit $code"
}

erfnet=configs/erfnet/patchmoe_erfnet_fcn_4xb4-160k_cityscapes-512x1024.py
street=configs/erfnet/patchmoe_erfnet_fcn_1xb4-1k_street-cityscapes-256x256.py

# The layer against k dense layers, bf16 autocast, also in capacity mode.
step dispatch 60 tools/benchmarks/benchmark_dispatch.py --device cuda \
  --experts 4 8 32 --batch 8 --repeats 20 --capacity-factor 1.25 \
  --autocast bfloat16
# The layer of each architecture against its dense layer and the naive
# reference, each dispatch and expert formulation.
step moe_layer 120 tools/benchmarks/benchmark_moe_layer.py --device cuda \
  --experts 4 8 32 --top-k 2 --dispatches views indexed \
  --scopes module conv lowrank32 --repeats 5 --threads 1 \
  --out "$out/moe_layer.json"
# MoE over stock models: parameters, FLOPs, inference latency.
step architectures 50 tools/benchmarks/benchmark_architectures.py \
  --device cuda --warmup 3 --repeats 20 --json "$out/architectures.json"
# MoE models against their top-k floor, eval and training step.
step floor 60 tools/benchmarks/benchmark_architectures.py --device cuda \
  --floor --warmup 3 --repeats 20 --json "$out/floor.json"
# The expert formulations (module, merged, low-rank) beside the stock.
step family 45 tools/benchmarks/benchmark_architectures.py --device cuda \
  --family formulation --warmup 3 --repeats 10 --json "$out/family.json"
# One config's latency against its derived stock model.
step latency 40 tools/analysis_tools/benchmark.py "$erfnet" --vs-stock \
  --device cuda --warmup 5 --repeats 20 --out "$out/latency.json"
# torch.compile of the training step, default and capacity mode.
step compile 75 tools/deployment/compile_check.py "$street" \
  --device cuda --backend inductor --batch 2 --shape 64 64
step compile_capacity 75 tools/deployment/compile_check.py "$street" \
  --device cuda --backend inductor --batch 2 --shape 64 64 \
  --capacity-factor 1.25

echo "outputs in $out (exit codes: $out/steps.txt)"
