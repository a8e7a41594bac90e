#!/usr/bin/env bash
# Submit sharded ingestion: an array job of SHARDS tasks, then the merge once every task has succeeded.
#
#   pipelines/cluster/ingest-submit.sh mimic-cxr /data/mimic-cxr-jpg /scratch/mimic-parts mimic.parquet 16
set -euo pipefail

if [[ $# -lt 5 ]]; then
  echo "usage: ingest-submit.sh SOURCE PATH PARTS_DIR MANIFEST SHARDS [medvl ingest options]" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
source_name=$1 source_path=$2 parts=$3 manifest=$4 shards=$5
shift 5
mkdir -p logs
array=$(sbatch --parsable --array=0-$(( shards - 1 )) "$here/ingest-array.sbatch" "$source_name" "$source_path" "$parts" "$@")
merge=$(sbatch --parsable --dependency=afterok:"${array%%;*}" "$here/ingest-merge.sbatch" "$parts" "$manifest")
echo "array job $array ($shards shards), merge job $merge -> $manifest"
