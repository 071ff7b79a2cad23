#!/usr/bin/env bash
# Fine-tune the authors' universal V1 generator on the allison corpus, on one GPU, then compare
# copy synthesis before and after on the held-out validation list.
#
#   bash scripts/gpu/finetune_allison.sh              # one CUDA GPU, bf16-mixed (about 2-3 h at the defaults)
#   TINY=1 bash scripts/gpu/finetune_allison.sh       # the same steps on a CPU: tiny model, 2 steps
#   ACCELERATOR=cpu BATCH_SIZE=1 MAX_STEPS=1500 VAL_EVERY=250 CHECKPOINT_EVERY=100 NUM_WORKERS=1 \
#     EXTRA="--max-val-utterances 10" bash scripts/gpu/finetune_allison.sh   # the CPU run of
#                                                      # docs/results/finetune-allison.md (2 cores)
#
# What it does (every step is a `hifigan` command; read them below):
#  1. `hifigan prepare`: checks the corpus and writes 22.05 kHz copies of its train/val lists
#     (allison is 16 kHz; the data pipeline resamples with soxr HQ). The val list stays held out.
#  2. `hifigan evaluate` of the starting model on the val list (copy synthesis: mel L1, PESQ, STOI...).
#  3. `hifigan finetune --from universal-v1` on the train list: fresh discriminators, the authors'
#     recipe (lr 2e-4, AdamW 0.8/0.99, decay 0.999/epoch, batch 16), bf16-mixed, checkpoints every
#     CHECKPOINT_EVERY steps, TensorBoard logs and validation as in any run. Mels are computed from the
#     real audio (copy-synthesis fine-tuning) unless MELS points at a folder of generated mels.
#     Re-running the script resumes the fine-tuning run where it stopped.
#  4. `hifigan evaluate` of the fine-tuned export, and a before/after table (WORK/comparison.json).
#
# Settings (environment variables): WORK (output folder), ALLISON (corpus folder), FROM (a registered
# model name or a checkpoint path, e.g. .../generator_universal.pth.tar), MELS, PRECISION, MAX_STEPS,
# BATCH_SIZE, VAL_EVERY, CHECKPOINT_EVERY, NUM_WORKERS, DEVICES, ACCELERATOR (gpu; cpu for the CPU run),
# EXTRA (more `hifigan finetune` options).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-python}"
HIFIGAN=("$PYTHON" -m hifigan)

if [[ -z "${ALLISON:-}" ]]; then
  for candidate in "${HIFIGAN_SHARED_DIR:-}/data/allison-en-16k" "$REPO/../shared/data/allison-en-16k" \
                   "$REPO/shared/data/allison-en-16k" /work/shared/data/allison-en-16k; do
    if [[ -f "$candidate/train.txt" ]]; then ALLISON="$candidate"; break; fi
  done
fi
[[ -n "${ALLISON:-}" && -f "$ALLISON/train.txt" ]] || { echo "set ALLISON to the allison-en-16k folder" >&2; exit 2; }

TINY="${TINY:-0}"
WORK="${WORK:-runs/finetune-allison}"
mkdir -p "$WORK"

if [[ "$TINY" == 1 ]]; then
  # a tiny model and a few clips: the same commands, small enough for a CPU
  : "${FROM:=$WORK/tiny-source.pt}"
  : "${PRECISION:=bf16-mixed}"
  : "${MAX_STEPS:=2}"; : "${BATCH_SIZE:=2}"; : "${VAL_EVERY:=2}"; : "${CHECKPOINT_EVERY:=2}"
  : "${NUM_WORKERS:=0}"; : "${DEVICES:=1}"
  HARDWARE=(--accelerator cpu)
  SIZE=(--segment-size 2048 --set training.discriminator_channel_divisor=16 --max-val-utterances 2 --log-every 1)
  EVAL_OPTS=(--plots 1 --jobs 1)
  [[ -f "$FROM" ]] || "$PYTHON" "$HERE/make_tiny_source.py" "$FROM"
  SUBSET="$WORK/subset"
  mkdir -p "$SUBSET"
  grep -v silence "$ALLISON/train.txt" | awk 'NR % 40 == 1' | head -n 6 | sed "s|^|$ALLISON/|" > "$SUBSET/train.txt"
  head -n 2 "$ALLISON/val.txt" | sed "s|^|$ALLISON/|" > "$SUBSET/val.txt"
  CORPUS="$SUBSET"
else
  : "${FROM:=universal-v1}"
  : "${PRECISION:=bf16-mixed}"
  : "${MAX_STEPS:=20000}"; : "${BATCH_SIZE:=16}"; : "${VAL_EVERY:=1000}"; : "${CHECKPOINT_EVERY:=1000}"
  : "${NUM_WORKERS:=4}"; : "${DEVICES:=1}"
  HARDWARE=(--accelerator "${ACCELERATOR:-gpu}")
  SIZE=()
  EVAL_OPTS=()
  CORPUS="$ALLISON"
fi

# the starting model, for `hifigan evaluate`: a registered name or a checkpoint file
if [[ -f "$FROM" ]]; then BEFORE_MODEL=(--checkpoint "$FROM"); else BEFORE_MODEL=(--model "$FROM"); fi

echo "== 1/4 prepare: $CORPUS -> $WORK/data (22.05 kHz copies, train/val split kept)"
if [[ ! -f "$WORK/data/train.txt" ]]; then
  "${HIFIGAN[@]}" prepare "$CORPUS" --out "$WORK/data" --resample-to 22050 --no-progress
fi

echo "== 2/4 evaluate the starting model ($FROM) on the held-out val list"
if [[ ! -f "$WORK/eval-before/metrics.json" ]]; then
  "${HIFIGAN[@]}" evaluate "${BEFORE_MODEL[@]}" --out "$WORK/eval-before" --baseline none --summary-only \
    "${EVAL_OPTS[@]}" "$WORK/data/val.txt"
fi

echo "== 3/4 fine-tune $FROM on the train list ($PRECISION, $MAX_STEPS steps)"
MEL_OPTS=()
[[ -n "${MELS:-}" ]] && MEL_OPTS=(--mels "$MELS")
"${HIFIGAN[@]}" finetune --from "$FROM" --data "$WORK/data" --out "$WORK/run" \
  "${MEL_OPTS[@]}" --fresh-discriminators --precision "$PRECISION" --devices "$DEVICES" "${HARDWARE[@]}" \
  --max-steps "$MAX_STEPS" --batch-size "$BATCH_SIZE" --val-every "$VAL_EVERY" \
  --checkpoint-every "$CHECKPOINT_EVERY" --num-workers "$NUM_WORKERS" --no-progress \
  "${SIZE[@]}" ${EXTRA:-}

echo "== 4/4 evaluate the fine-tuned generator and compare"
"${HIFIGAN[@]}" evaluate --checkpoint "$WORK/run/generator.pt" --out "$WORK/eval-after" --baseline none \
  --summary-only "${EVAL_OPTS[@]}" "$WORK/data/val.txt"
"$PYTHON" "$HERE/compare_eval.py" "$WORK/eval-before/metrics.json" "$WORK/eval-after/metrics.json" \
  "$WORK/comparison.json"
echo "done: run in $WORK/run (TensorBoard: tensorboard --logdir $WORK/run/logs)"
