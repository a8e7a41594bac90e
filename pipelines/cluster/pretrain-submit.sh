#!/usr/bin/env bash
# Submit a training run with its cache built first: cache-array.sbatch as an array job of SHARDS tasks, then
# cache-merge.sbatch, then pretrain.sbatch, each once the one before has succeeded. The manifest, the cache folder,
# the image size and the CT window come from the run's resolved settings (data.manifest, data.cache,
# data.image_size, data.ct_window), so the cache is the one the training job checks for.
#
#   pipelines/cluster/pretrain-submit.sh 16 configs/pretrain/mimic-resnet50.yaml \
#     data.manifest=/scratch/mimic.parquet data.cache=/scratch/mimic-cache
#
# The parts go to <data.cache>.parts (delete it after the merge). sbatch options for the training job go in
# MEDVL_PRETRAIN_SBATCH, e.g. MEDVL_PRETRAIN_SBATCH="--nodes=8 --time=48:00:00". When the cache exists already,
# submit pretrain.sbatch alone.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: pretrain-submit.sh SHARDS CONFIG [key=value ...]   (with data.manifest and data.cache set)" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
shards=$1
shift
settings=$(medvl pretrain "$@" --print-config | python3 -c '
import sys, yaml
data = yaml.safe_load(sys.stdin)["data"]
missing = [f"data.{key}" for key in ("manifest", "cache") if not data[key]]
if missing:
    print("pretrain-submit: set " + " and ".join(missing), file=sys.stderr)
    sys.exit(2)
print(data["manifest"], data["cache"], data["image_size"], data["ct_window"], sep="\t")')
IFS=$'\t' read -r manifest cache size window <<< "$settings"
read -ra train_options <<< "${MEDVL_PRETRAIN_SBATCH:-}"
parts="${cache%/}.parts"
mkdir -p logs
array=$(sbatch --parsable --array=0-$(( shards - 1 )) "$here/cache-array.sbatch" "$manifest" "$parts" \
  --size "$size" --ct-window "$window")
merge=$(sbatch --parsable --dependency=afterok:"${array%%;*}" "$here/cache-merge.sbatch" "$parts" "$cache")
train=$(sbatch --parsable --dependency=afterok:"${merge%%;*}" "${train_options[@]}" "$here/pretrain.sbatch" "$@")
echo "cache array job $array ($shards parts) -> merge job $merge -> $cache; pretrain job $train"
