#!/usr/bin/env bash
# Fine-tune dialogft_agent on two machines, one process each, under torchrun.
#
# Run this script on both machines; only NODE_RANK differs:
#   on the first (10.0.0.1):  NODE_RANK=0 MASTER_ADDR=10.0.0.1 examples/torchrun_two_nodes.sh
#   on the second:            NODE_RANK=1 MASTER_ADDR=10.0.0.1 examples/torchrun_two_nodes.sh
# MASTER_ADDR is the first machine's address on both; MASTER_PORT must be open between them.
# MODEL_FILE must be on a file system both machines see: rank 0 writes the checkpoints, and
# every rank reads MODEL_FILE.checkpoint when the same two commands resume a killed job.
# Each process trains on its own batch of -bs examples: the global batch is 2 x bs.
#
# Flags after the script's name go to ParlAI and override those below (the last one wins):
#   NODE_RANK=0 MASTER_ADDR=10.0.0.1 examples/torchrun_two_nodes.sh -bs 16 -tstep 5000
# On GPU machines, set NPROC_PER_NODE to the GPUs per machine (NCCL; LOCAL_RANK picks the GPU).
#
# tests/test_torchrun.py runs this script on loopback (MASTER_ADDR=127.0.0.1, a free port)
# with a tiny model, trains, kills a node, and resumes.
set -euo pipefail

: "${NODE_RANK:?set NODE_RANK: 0 on the first machine, 1 on the second}"
: "${MASTER_ADDR:?set MASTER_ADDR to the first machine address}"
MASTER_PORT="${MASTER_PORT:-29500}"
NPROC_PER_NODE="${NPROC_PER_NODE:-1}"
MODEL_FILE="${MODEL_FILE:-/shared/dialogft/customer/model}"
# On CPU, one torch thread per process: more only compete for the same cores.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

exec torchrun --nnodes 2 --nproc-per-node "$NPROC_PER_NODE" --node-rank "$NODE_RANK" \
    --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT" \
    -m parlai_dialogft.training.launch train_model \
    -t dialogft_customer -m dialogft_agent -mf "$MODEL_FILE" \
    -bs 8 -tstep 2000 -vstep 250 -vme 1000 --save-after-valid true \
    "$@"
