#!/usr/bin/env bash
# A scaling sweep on this machine: the same training at several rank counts, weak and/or strong
# scaling, then `starft report --scaling` (OUT/scaling.md, OUT/scaling.png: images/s, speed-up and
# efficiency against the fewest ranks, the step-time breakdown per rank count).
#
#   launch/scaling.sh [--ranks "1 2 4"] [--mode weak|strong|both] [--batch-per-rank B]
#                     [--steps N] [--threads T] [--out DIR] -- TRAIN_ARGS...
#
# TRAIN_ARGS are `starft train`'s (a --config with the model, store, vocab, ...); the sweep sets
# --batch-size, --stop-after, --run-dir, --checkpoint-every 0 and --log-every itself.
#   weak:   batch per rank B at every rank count (global batch B x ranks);
#   strong: the global batch B x (the largest rank count) at every rank count.
# Defaults: ranks "1 2 4", mode both, B 16, 30 steps, 1 thread per rank (so that N ranks use N
# cores and the ranks, not the threads, are what scales), out runs/scaling. Each run goes to
# OUT/<mode>-n<ranks>/ with a scaling.json; an existing one is replaced. Checkpoints and epoch
# ends are not part of any step's time. Example (pre-training the demo model on the quick demo's
# store; README, "Scaling studies"):
#   launch/scaling.sh --ranks "1 2 4" --batch-per-rank 32 -- --config configs/demo_pretrain.ini \
#       --store runs/demo-quick/stores/pretrain --vocab ../shared/fixtures/clip/bpe_simple_vocab_16e6.txt.gz
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
ranks_list="1 2 4"
mode=both
per_rank=16
steps=30
threads=1
out=runs/scaling
while [ $# -gt 0 ]; do
  case "$1" in
    --ranks) ranks_list=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    --batch-per-rank) per_rank=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "scaling.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "scaling.sh: no training arguments after -- (see --help)" >&2; exit 2; }
case "$mode" in weak) modes=(weak) ;; strong) modes=(strong) ;; both) modes=(weak strong) ;;
  *) echo "scaling.sh: --mode must be weak, strong or both, got '$mode'" >&2; exit 2 ;; esac
for v in "$per_rank" "$steps" "$threads" $ranks_list; do
  case "$v" in ''|*[!0-9]*|0) echo "scaling.sh: '$v' is not a positive integer" >&2; exit 2 ;; esac
done
bin=${STARFT_BIN:-$root/build/starft}
[ -x "$bin" ] || { echo "scaling.sh: $bin not found; build first (cmake --build build --target starft)" >&2; exit 2; }
max_ranks=0
for n in $ranks_list; do [ "$n" -gt "$max_ranks" ] && max_ranks=$n; done
mkdir -p "$out"
for m in "${modes[@]}"; do
  for n in $ranks_list; do
    if [ "$m" = weak ]; then batch=$(( per_rank * n )); else batch=$(( per_rank * max_ranks )); fi
    run="$out/$m-n$n"
    rm -rf "$run"
    echo "== scaling: $m, $n rank(s), global batch $batch, $steps steps -> $run" >&2
    "$here/mpirun.sh" -n "$n" -t "$threads" -- "$bin" train "$@" --batch-size "$batch" --stop-after "$steps" \
      --run-dir "$run" --checkpoint-every 0 --keep-checkpoints 1 --log-every "$steps"
    printf '{"mode": "%s", "ranks": %d, "global_batch": %d, "threads_per_rank": %d, "steps": %d}\n' \
      "$m" "$n" "$batch" "$threads" "$steps" > "$run/scaling.json"
  done
done
"$bin" report --scaling "$out" --out "$out"
