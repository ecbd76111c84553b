#!/bin/sh
# Prints the --backend value for a worker container: `tfjs-node-gpu` when a GPU answers
# nvidia-smi AND @tensorflow/tfjs-node-gpu loads in this image (its libtensorflow finds
# CUDA and cuDNN), otherwise `auto` (DESIGN.md section 4: tfjs-node -> wasm -> cpu).
# Deciding here rather than inside `auto` makes a broken GPU set-up visible: the reason is
# printed on stderr, and the container still trains on what it has.
set -u
app="${LOCKSTEP_APP_DIR:-/app}"
pkg="${LOCKSTEP_GPU_PACKAGE:-@tensorflow/tfjs-node-gpu}"
probe_timeout="${LOCKSTEP_GPU_PROBE_TIMEOUT:-120}"

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "select-backend: no nvidia-smi (no GPU given to this container): auto" >&2
  echo auto
  exit 0
fi
if ! gpus="$(nvidia-smi -L 2>/dev/null)" || ! printf '%s\n' "$gpus" | grep -q '^GPU '; then
  echo "select-backend: nvidia-smi finds no usable GPU: auto" >&2
  echo auto
  exit 0
fi
# Loading the package initialises libtensorflow (a few seconds): do it in a throw-away process.
if (cd "$app" && timeout "$probe_timeout" node -e 'require(process.argv[1])' "$pkg") >/dev/null 2>&1; then
  echo "select-backend: $(printf '%s\n' "$gpus" | head -n 1): tfjs-node-gpu" >&2
  echo tfjs-node-gpu
else
  echo "select-backend: a GPU is present but $pkg does not load (CUDA/cuDNN mismatch?): auto" >&2
  echo auto
fi
