#!/usr/bin/env bash
# Start `medvl pretrain` on this node with torchrun; run the same command on every node of the job.
#
#   NNODES=4 NPROC_PER_NODE=8 RDZV_ENDPOINT=head-node:29500 RDZV_ID=mimic01 \
#     pipelines/cluster/torchrun-multinode.sh configs/pretrain/mimic-resnet50.yaml data.cache=/scratch/cache
#
# Environment (defaults: one node, one process per GPU or 1 on a CPU machine, rendezvous on this host):
#   NNODES           nodes in the job                        (1)
#   NPROC_PER_NODE   processes on this node                  (GPUs seen by nvidia-smi, else 1)
#   RDZV_ENDPOINT    host:port of the c10d rendezvous        (127.0.0.1:29500; the first node's address)
#   RDZV_ID          a job id shared by all nodes            (medvl-$USER)
#   RESUME           1: continue from <run folder>/last.pt   (auto: when the run folder holds last.pt)
# Arguments: the settings YAML and key=value overrides of `medvl pretrain`.
set -euo pipefail

if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit $(( $# < 1 ? 2 : 0 ))
fi

gpus=$(nvidia-smi --list-gpus 2>/dev/null | wc -l || true)
NNODES=${NNODES:-1}
NPROC_PER_NODE=${NPROC_PER_NODE:-$(( gpus > 0 ? gpus : 1 ))}
RDZV_ENDPOINT=${RDZV_ENDPOINT:-127.0.0.1:29500}
RDZV_ID=${RDZV_ID:-medvl-${USER:-job}}

# The run folder (output_dir/run_name) of these settings: resume when a checkpoint is already there.
run_dir=$(medvl pretrain "$@" --print-config | python3 -c \
  'import sys, yaml; c = yaml.safe_load(sys.stdin); print(c["output_dir"] + "/" + c["run_name"])')
resume=()
if [[ "${RESUME:-auto}" == 1 || ( "${RESUME:-auto}" == auto && -f "$run_dir/last.pt" ) ]]; then
  resume=(--resume)
fi

echo "torchrun: ${NNODES} node(s) x ${NPROC_PER_NODE} process(es), rendezvous ${RDZV_ENDPOINT} (${RDZV_ID}), run ${run_dir} ${resume[*]}" >&2
exec torchrun --nnodes "$NNODES" --nproc-per-node "$NPROC_PER_NODE" \
  --rdzv-backend c10d --rdzv-endpoint "$RDZV_ENDPOINT" --rdzv-id "$RDZV_ID" \
  --no-python medvl pretrain "$@" "${resume[@]}"
