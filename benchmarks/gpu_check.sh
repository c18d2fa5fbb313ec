#!/usr/bin/env bash
# The GPU check in one run (≤ 8 minutes on one H200): MFU in TF32 and bf16, a worker job end
# to end on CUDA, the array loader against training consumption, probes on CUDA.
#
#   benchmarks/gpu_check.sh [--device cuda|cpu|cuda:N] [--quick] [--out DIR]
#
# Writes DIR/gpu_check.md and DIR/gpu_check.json (default benchmarks/results/gpu) and prints
# PASS/FAIL against the targets. scalelab's dependencies that the machine lacks (the H200
# image has torch but not sqlalchemy or ffcv) are installed first from benchmarks/wheels with
# `pip install --no-index --find-links benchmarks/wheels`: fill that folder beforehand with
# benchmarks/fill_wheels.sh (cp312 manylinux wheels; nothing is downloaded on the GPU machine).
# `--device cpu --quick` runs the whole script in well under a minute (tests/test_gpu_check.py).
# Exit status: 0 when every section ran (targets are reported, not enforced), 1 when one
# raised, 2 on bad arguments or dependencies that cannot be installed.
set -euo pipefail
args=()
while (($#)); do
  case "$1" in
    --device) [[ $# -ge 2 ]] || { echo "gpu_check: --device needs a value" >&2; exit 2; }
              args+=("$1" "$2"); shift 2 ;;
    --out) [[ $# -ge 2 ]] || { echo "gpu_check: --out needs a folder" >&2; exit 2; }
           args+=("$1" "$(realpath -m "$2")"); shift 2 ;;
    --quick) args+=("$1"); shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check: unknown argument $1 (use --device, --quick, --out)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=${GPU_CHECK_WHEELS:-benchmarks/wheels}  # where the wheels are handed over

# Distributions whose import fails here, from scalelab's runtime dependencies (+ ffcv, only
# when its wheel was handed over: the check measures the array loader, not FFCV's).
missing=$("$PYTHON" - "$WHEELS" <<'PY'
import importlib.util, pathlib, sys
need = {"sqlalchemy": "sqlalchemy", "alembic": "alembic", "numpy": "numpy", "pandas": "pandas",
        "scipy": "scipy", "matplotlib": "matplotlib", "typer": "typer", "PIL": "pillow",
        "threadpoolctl": "threadpoolctl"}
if any(pathlib.Path(sys.argv[1]).glob("ffcv-*.whl")):
    need["ffcv"] = "ffcv"
print(" ".join(d for m, d in need.items() if importlib.util.find_spec(m) is None))
PY
)
if [[ -n "$missing" ]]; then
  echo "gpu_check: installing $missing from $WHEELS"
  "$PYTHON" -m pip install -q --no-index --find-links "$WHEELS" $missing || {
    echo "gpu_check: cannot install $missing from $WHEELS; fill it with" \
         "benchmarks/fill_wheels.sh $missing (on a machine with network access)" >&2
    exit 2
  }
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
cd benchmarks  # the benchmarks import each other by module name
exec "$PYTHON" gpu_check.py "${args[@]}"
