#!/usr/bin/env bash
# Chooses StarFT's lambda on the validation stores of the built-in benchmark, never on test:
# fine-tunes one StarFT model per lambda from the zero-shot model that launch/demo.sh left in DIR
# (stores, zeroshot.safetensors, teacher-cache.h5) and evaluates each on `group-val` (the held-out
# pair on two places: worst-group and average accuracy) and `finetune-val` (in-distribution).
#
#   launch/sweep_lambda.sh [--out DIR] [--lambdas 0,1,3,10] [--seed 0] [--ranks 2] [-- extra train args]
#
# Prints DIR/sweep/results.md: one row per lambda (lambda 0 is FLYP). configs/demo_finetune.ini
# records the sweep that chose its lambda.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=runs/demo
lambdas=0,1,3,10
seed=0
ranks=2
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --lambdas) lambdas=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "sweep_lambda.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
bin="$root/${STARFT_BUILD_DIR:-build}/starft"
vocab=${STARFT_VOCAB:-$root/../shared/fixtures/clip/bpe_simple_vocab_16e6.txt.gz}
for need in "$bin" "$out/zeroshot.safetensors" "$out/teacher-cache.h5" "$out/stores/finetune-train/manifest.json" \
            "$out/stores/group-val/manifest.json" "$out/stores/finetune-val/manifest.json"; do
  [ -e "$need" ] || { echo "sweep_lambda.sh: $need is missing; run launch/demo.sh --out $out first" >&2; exit 2; }
done
mpi=("$root/launch/mpirun.sh" -n "$ranks" --)
sweep="$out/sweep"
rm -rf "$sweep"
mkdir -p "$sweep"
table="$sweep/results.md"
for lambda in ${lambdas//,/ }; do
  run="$sweep/lambda-$lambda"
  reg=starft
  [ "$lambda" = 0 ] && reg=none
  echo "== lambda $lambda (seed $seed)"
  "${mpi[@]}" "$bin" train --config configs/demo_finetune.ini --regulariser "$reg" --lambda "$lambda" --seed "$seed" \
    --weights "$out/zeroshot.safetensors" --store "$out/stores/finetune-train" --vocab "$vocab" \
    --teacher-cache "$out/teacher-cache.h5" --run-dir "$run" "$@" > "$run.log" 2>&1 || { tail -20 "$run.log"; exit 1; }
  "$bin" export --run-dir "$run" --out "$run/final.safetensors" > /dev/null 2>&1
  "${mpi[@]}" "$bin" eval --weights "$run/final.safetensors" --templates fashion --vocab "$vocab" \
    --store "$out/stores/group-val:name=group-val,$out/stores/finetune-val:name=finetune-val" \
    --out "$run/eval" > "$run/eval.log" 2>&1 || { tail -20 "$run/eval.log"; exit 1; }
  # The first table of results.md: its header once, then this model's row labelled by lambda.
  rows=$(awk '/^\|/ { print; n++ } n && !/^\|/ { exit }' "$run/eval/results.md")
  [ -s "$table" ] || printf '%s\n' "$rows" | sed -n '1,2p' | sed '1s/^| model |/| lambda |/' > "$table"
  printf '%s\n' "$rows" | sed -n '3p' | sed "s/^| [^|]* |/| $lambda |/" >> "$table"
done
echo
cat "$table"
