#!/usr/bin/env bash
# Every GPU figure of the pretraining-engine and volume issues in one run of at most 9.5 minutes, in one JSON file.
#
#   bash benchmarks/gpu_suite.sh [OUT.json]               on a GPU machine (default OUT: gpu_suite.json)
#   bash benchmarks/gpu_suite.sh --cpu-smoke [OUT.json]   every step on tiny models on the CPU (CI; about 2 min)
#
# Steps, each time-boxed so that one slow step cannot eat the others' time:
#   input_pipeline  benchmarks/bench_input_pipeline.py: the trainer's host path alone (model a no-op), pairs/s
#                   and volumes/s against the previous path ("missing" while the script does not exist)
#   pretrain        benchmarks/bench_pretrain.py: images/s and MFU of ViT-B/16 + BERT-base and ResNet-50 +
#                   BERT-base, 224 px, bf16, batch 256, through the real input pipeline
#   slice_pooling   benchmarks/bench_slice_pooling.py: memory and volumes/s of RadCLIP slice pooling at 64 and
#                   128 slices of 224 px in bf16, chunked with checkpointing against all slices at once
#   volume_encoders benchmarks/bench_volume_encoders.py: peak memory and time per volume of a training step at
#                   64 and 128 slices of 224 px in bf16: slice pooling (stage volume and stage 2d) against the
#                   native 3D encoder (ResNet-18 3D at depth 32, and at the volume's own depth)
# The JSON records the card (torch.cuda.get_device_name), each step's command, exit status, seconds, results
# and figures, and what is not measured yet.
set -uo pipefail
cd "$(dirname "$0")/.."

command="$0 $*" mode=gpu
case "${1:-}" in
  -h | --help) sed -n '2,18p' "$0" | cut -c 3-; exit 0 ;;
  --cpu-smoke) mode=cpu-smoke; shift ;;
esac
out=$(realpath -m "${1:-gpu_suite.json}")
py=${PYTHON:-python}
[ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && py=.venv/bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ "$mode" = gpu ]; then
  if ! "$py" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    echo "gpu_suite.sh: no CUDA device visible to $py (--cpu-smoke runs the steps on the CPU)" >&2
    exit 2
  fi
  device=cuda
  input_limit=150 pretrain_limit=200 slices_limit=90 volumes_limit=90  # with kill grace and collection: < 9.5 minutes
  pretrain=(--model vit-b16-bert resnet50-bert --size 224 --batch 256 --steps 10 --warmup 3 --repeats 3)
  slices=(--model radclip-resnet18 --size 224 --depths 64 128 --chunk 16 --repeats 5)
  volumes=(--model radclip-resnet18 --size 224 --slices 64 128 --precision bf16 --repeats 3)
  input=(--quick)
else
  device=cpu
  input_limit=120 pretrain_limit=120 slices_limit=120 volumes_limit=120  # only against hangs
  # --peak-tflops 1 exercises the MFU arithmetic; a CPU has no peak worth quoting (the JSON says cpu-smoke).
  pretrain=(--model tiny-resnet18 --size 64 --batch 16 --steps 2 --warmup 1 --repeats 1 --peak-tflops 1)
  slices=(--model tiny-radclip-resnet18 --size 64 --depths 8 --chunk 4 --repeats 1)
  volumes=(--model tiny-radclip-resnet18 --size 32 --quick)
  input=(--quick --n 64 --size 64 --batch 32 --steps 2 --volumes 2 --repeats 1)
fi

# step NAME SECONDS COMMAND...: run COMMAND for at most SECONDS; its command, log and status go to $work.
step() {
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  echo "== $name (at most ${limit} s): $*" >&2
  printf '%s\n' "$@" >"$work/$name.cmd"
  timeout --kill-after=5 "$limit" "$@" >"$work/$name.log" 2>&1
  echo "$? $((SECONDS - start)) $limit" >"$work/$name.status"
  tail -n 2 "$work/$name.log" >&2
}

step input_pipeline "$input_limit" "$py" benchmarks/bench_input_pipeline.py --device "$device" "${input[@]}" \
  --json "$work/input_pipeline.json"

step pretrain "$pretrain_limit" "$py" benchmarks/bench_pretrain.py --device "$device" --loops medvl \
  "${pretrain[@]}" --json "$work/pretrain.json"
step slice_pooling "$slices_limit" "$py" benchmarks/bench_slice_pooling.py --device "$device" "${slices[@]}" \
  --json "$work/slice_pooling.json"
step volume_encoders "$volumes_limit" "$py" benchmarks/bench_volume_encoders.py --device "$device" "${volumes[@]}" \
  --json "$work/volume_encoders.json"

"$py" benchmarks/gpu_suite_collect.py "$work" "$out" --mode "$mode" --command "$command"
