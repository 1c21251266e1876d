#!/usr/bin/env bash
# Distributed training with torchrun (MMEngine's pytorch launcher).
# Usage: bash tools/dist_train.sh CONFIG NUM_PROCS [train.py args...]
# NNODES, NODE_RANK, PORT and MASTER_ADDR may be set in the environment.
# Without a GPU, each process trains on the CPU with the gloo backend.
set -euo pipefail
CONFIG=$1
NPROCS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname "$0")/..${PYTHONPATH:+:$PYTHONPATH}" \
torchrun \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROCS" \
    --master_port="$PORT" \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
