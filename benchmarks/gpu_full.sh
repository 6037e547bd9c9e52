#!/usr/bin/env bash
# The `full` profile on a GPU: every notebook through the same harness as `make course`, with the peak GPU
# memory sampled beside it. Writes build/gpu_full/<stem>.json (results, wall_s, peak_rss_mb, gpu_peak_mb) and
# benchmarks/gpu_full.md (commit it after a run on a real GPU).
#
#   bash benchmarks/gpu_full.sh [notebooks/0N_*.ipynb ...]
#
# Needs: an NVIDIA GPU (nvidia-smi and torch.cuda), `make setup` done (or PY=... pointing at a Python with the
# course installed), and the full profile's models and data: online (the Hub) or LEARNSTRAT_MODEL_DIR /
# LEARNSTRAT_DATA_DIR folders that hold them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
command -v nvidia-smi >/dev/null || { echo "gpu_full.sh: no nvidia-smi: this needs an NVIDIA GPU machine" >&2; exit 2; }
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
  || { echo "gpu_full.sh: torch sees no CUDA device (a CPU build of torch?)" >&2; exit 2; }
notebooks=("$@"); [ ${#notebooks[@]} -gt 0 ] || notebooks=(notebooks/[0-9][0-9]_*.ipynb)
out=build/gpu_full; mkdir -p "$out"
gpu=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)
{
  echo "# The full profile on one GPU"; echo
  echo "Written by \`benchmarks/gpu_full.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'): $gpu, $(nproc) CPU cores,"
  echo "torch $("$PY" -c 'import torch; print(torch.__version__)'). GPU memory is nvidia-smi's memory.used, sampled every 0.5 s."
  echo; echo "| notebook | status | wall (s) | peak GPU memory (MB) | peak RSS (MB) |"; echo "|---|---|---:|---:|---:|"
} > "$out/table.md"
status_all=0
for nb in "${notebooks[@]}"; do
  stem=$(basename "$nb" .ipynb)
  samples="$out/$stem.gpu-samples"; : > "$samples"
  ( while sleep 0.5; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1 >> "$samples"; done ) &
  poller=$!
  status=ok
  LEARNSTRAT_PROFILE=full "$PY" benchmarks/run_course.py --no-table "$nb" || { status=failed; status_all=1; }
  kill "$poller" 2>/dev/null || true; wait "$poller" 2>/dev/null || true
  peak=$(sort -n "$samples" | tail -1); peak=${peak:-0}
  "$PY" - "$stem" "$peak" "$status" "$out" <<'PYEOF'
import json, sys
from pathlib import Path
stem, peak, status, out = sys.argv[1], float(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
source = Path("build/results") / f"{stem}.json"
results = json.loads(source.read_text()) if source.is_file() else {}
results.update(gpu_peak_mb=peak, status=status)
(out / f"{stem}.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
with open(out / "table.md", "a") as table:
    table.write(f"| {stem} | {status} | {results.get('wall_s', float('nan')):.0f} | {peak:.0f} | "
                f"{results.get('peak_rss_mb', float('nan')):.0f} |\n")
PYEOF
done
cp "$out/table.md" benchmarks/gpu_full.md
echo "wrote $out/ and benchmarks/gpu_full.md"
exit $status_all
