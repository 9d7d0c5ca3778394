#!/usr/bin/env bash
# The benchmark protocol of every neural model on one GPU, all runs at once, within a time budget.
#
#   SESSIONREC_SHARED_DATA=../shared/data bash benchmarks/accuracy/gpu_protocol.sh OUT_DIR \
#       [BUDGET_S] [JOB...]
#
# Each job is one of the protocol benchmarks (benchmarks.accuracy.bench_gru4rec protocol,
# bench_sasrec, bench_prefix_models, run as modules from the repository root) with
# device=cuda and max_train_seconds=BUDGET_S (default 300): every run stops before an epoch
# that would pass the budget, keeps the epoch selected on validation and reports the test
# figures. The jobs share the GPU (CUDA MPS when it starts, else time
# slicing) and one CPU thread each, so their epoch times are those of a shared GPU, not of a
# GPU alone. OUT_DIR gets progress.txt (every job's log so far, rewritten every 20 s) and,
# at the end, results.txt (the JSON each job printed) and logs.txt. JOB names pick a subset;
# NAME:key=value,key=value runs job NAME with those hyperparameters changed (a variant);
# among the changes, "refit" adds the refit on the whole training file after selection and
# "refit_epochs=N" runs only a refit of N epochs (benchmarks/accuracy/protocol_refit.py).
# HARD_LIMIT_S (default 1.5 x BUDGET_S + 60) kills a job that is still running then.
# DEVICE=cpu runs the same jobs on the CPU (a check of this script); PYTHON picks the
# interpreter (default python3).
set -u
out=${1:?usage: gpu_protocol.sh OUT_DIR [BUDGET_S] [JOB...]}
budget=${2:-300}
shift $(($# < 2 ? $# : 2))
device=${DEVICE:-cuda}
py=${PYTHON:-python3}
runs=$(mktemp -d)
mkdir -p "$out"
out=$(cd "$out" && pwd)
# The jobs run as modules of the benchmarks package: from the repository root.
cd "$(dirname "$0")/../.."

common="--param device=$device --param max_train_seconds=$budget"
gru="$py -m benchmarks.accuracy.bench_gru4rec protocol --threads 1 $common"
sas="$py -m benchmarks.accuracy.bench_sasrec --threads 1 --epochs 40 --patience 3 $common"
pre="$py -m benchmarks.accuracy.bench_prefix_models --threads 1 --epochs 40 --patience 3 --device $device
     --param max_train_seconds=$budget"
declare -A JOBS=(
  [gru4rec-diginetica-mrr]="$gru --dataset diginetica --param selection_metric=mrr@20"
  [gru4rec-yoochoose-mrr]="$gru --dataset yoochoose-1_64 --param selection_metric=mrr@20
     --param n_epochs=20"
  [sasrec-diginetica-ce]="$sas --dataset diginetica --loss ce --param dropout=0.2"
  [sasrec-diginetica-ce-d128]="$sas --dataset diginetica --loss ce --param hidden_size=128
     --param dropout=0.3"
  [sasrec-yoochoose-ce]="$sas --dataset yoochoose-1_64 --loss ce --param dropout=0.2"
  [srgnn-diginetica]="$pre --model srgnn --dataset diginetica"
  [srgnn-diginetica-b512]="$pre --model srgnn --dataset diginetica --param batch_size=512
     --param learning_rate=0.002"
  [srgnn-yoochoose]="$pre --model srgnn --dataset yoochoose-1_64"
  [narm-diginetica]="$pre --model narm --dataset diginetica"
  [narm-yoochoose]="$pre --model narm --dataset yoochoose-1_64"
  [stamp-diginetica]="$pre --model stamp --dataset diginetica"
  [stamp-yoochoose]="$pre --model stamp --dataset yoochoose-1_64"
)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=("${!JOBS[@]}")
hard_limit=${HARD_LIMIT_S:-$((budget * 3 / 2 + 60))}
command_of() {  # NAME or NAME:key=value,... -> the job's command line
  local base=${1%%:*} changes=""
  [ -n "${JOBS[$base]:-}" ] || return 1
  [[ $1 == *:* ]] && changes=$(echo "${1#*:}" | tr ',' '\n' |
    sed -e 's/^refit$/--refit/' -e 's/^refit_epochs=/--refit-epochs /' -e '/^--refit/!s/^/--param /')
  echo ${JOBS[$base]} $changes
}

export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1
if [ "$device" = cuda ] && command -v nvidia-cuda-mps-control >/dev/null; then
  # MPS lets the small kernels of many processes run side by side instead of taking turns.
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  # -d fails when the daemon of an earlier run on this machine is still up: that one serves.
  nvidia-cuda-mps-control -d 2>/dev/null
  if echo get_server_list | nvidia-cuda-mps-control >/dev/null 2>&1 &&
     timeout 60 "$py" -c "import torch; torch.ones(1, device='cuda').sum().item()"; then
    echo "CUDA MPS on"
  else
    echo quit | nvidia-cuda-mps-control 2>/dev/null
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
    echo "CUDA MPS did not start: the jobs take turns on the GPU"
  fi
fi

collect() {  # every job's log so far, in one file
  for n in "${names[@]}"; do
    echo "=== $n: $(command_of "$n")"
    echo
    cat "$runs/$n.out" "$runs/$n.err" 2>/dev/null
  done >"$out/progress.tmp" && mv "$out/progress.tmp" "$out/progress.txt"
}

for n in "${names[@]}"; do
  command_of "$n" >/dev/null || { echo "unknown job $n (jobs: ${!JOBS[*]})"; exit 2; }
done
started=$(date +%s)
pids=()
for n in "${names[@]}"; do
  # The budget bounds training; the hard limit leaves room for the test ranking after it.
  timeout "$hard_limit" $(command_of "$n") >"$runs/$n.out" 2>"$runs/$n.err" &
  pids+=($!)
done
running() { for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
while running; do
  sleep 20
  collect
done
wait
collect
mv "$out/progress.txt" "$out/logs.txt"
for n in "${names[@]}"; do
  echo "=== $n"
  cat "$runs/$n.out"
done >"$out/results.txt"
echo "all jobs done in $(($(date +%s) - started)) s"
