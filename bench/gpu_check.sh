#!/usr/bin/env bash
# GPU check: on a machine with a CUDA GPU, runs the sec-10k default recipe (a full fine-tune, bf16/fp16
# mixed precision) and the encode benchmark, and prints the figures, in under 5 minutes on a modern card.
# Elsewhere it says "no GPU" and exits 0.
#
#   bash bench/gpu_check.sh            (from the project root, after `make install`)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "no GPU: torch.cuda.is_available() is False on this machine; nothing to check."
  exit 0
fi
DATA=../shared/data/sec-10k-qa
if [ ! -f "$DATA/train_dataset.json" ]; then
  echo "no benchmark data at $DATA: put sec-10k-qa beside the project"; exit 1
fi
"$PY" - <<'EOF'
import torch
p = torch.cuda.get_device_properties(0)
print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}, "
      f"{torch.cuda.device_count()} device(s)")
EOF
WS=$(mktemp -d)
trap 'rm -rf "$WS"' EXIT
START=$(date +%s)
echo "== encode benchmark (sec-10k passages, 512 tokens)"
"$PY" - "$DATA" <<'EOF'
import json, sys, time
import torch
from core.retrieval.embedding import encode, load_model
data = json.load(open(sys.argv[1] + "/val_dataset.json"))
texts = list(data["corpus"].values())
for device in ("cuda", "cpu"):
    model = load_model(device=device)
    model.max_seq_length = 512
    encode(model, texts[:32], kind="passage", batch_size=128)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    encode(model, texts, kind="passage", batch_size=128 if device == "cuda" else 32)
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(f"{device}: {len(texts)} passages in {dt:.1f} s = {len(texts) / dt:.0f} passages/s")
EOF
echo "== sec-10k default recipe on the GPU (train file + eval file, 729 passages searched)"
ETL_WORKSPACE="$WS/ws" "$PY" -m core train --train "$DATA/train_dataset.json" --eval "$DATA/val_dataset.json" --method full --device cuda \
  2> "$WS/train.log" | tail -n 30 || { tail -n 40 "$WS/train.log"; exit 1; }
grep -E "Trained|note:" "$WS/train.log" | tail -n 5 || true
if [ "$("$PY" -c 'import torch; print(torch.cuda.device_count())')" -gt 1 ]; then
  echo "== the same recipe on every GPU (torchrun, one process per GPU)"
  N=$("$PY" -c 'import torch; print(torch.cuda.device_count())')
  ETL_WORKSPACE="$WS/ddp" "$PY" -m core train --train "$DATA/train_dataset.json" --eval "$DATA/val_dataset.json" \
    --method full --nproc "$N" --device cuda 2> "$WS/ddp.log" | tail -n 8
fi
echo "== total: $(( $(date +%s) - START )) s"
