#!/usr/bin/env bash
# Fill benchmarks/wheels for benchmarks/gpu_check.sh on a GPU machine without network access:
# CPython 3.12 manylinux x86_64 wheels of scalelab's dependencies the machine lacks, with
# their own dependencies. Default: sqlalchemy and alembic (the H200 image has torch, numpy,
# pandas, scipy, matplotlib...); name others to add them, e.g. `fill_wheels.sh pandas typer`.
#   benchmarks/fill_wheels.sh [DIST ...]
# ffcv publishes no wheels: with FFCV=1, a Python 3.12 ($PYTHON312) and OpenCV/libjpeg-turbo
# headers (`make install-ffcv` lists them), `pip wheel` builds one; the GPU machine then needs
# the same shared libraries. The GPU check does not need it (it measures the array loader).
set -euo pipefail
cd "$(dirname "$0")"
PIP=${PIP:-python3 -m pip}
dists=("$@")
((${#dists[@]})) || dists=("sqlalchemy>=2.0" "alembic>=1.12")
$PIP download --only-binary=:all: --implementation cp --python-version 3.12 --abi cp312 \
  --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 -d wheels "${dists[@]}"
if [[ "${FFCV:-0}" == 1 ]]; then
  "${PYTHON312:?set PYTHON312 to a Python 3.12 interpreter}" -m pip wheel --no-deps -w wheels ffcv
fi
du -sh wheels
