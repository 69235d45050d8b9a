#!/usr/bin/env bash
# The GPU work of issues 3-6 as device calls of under 10 minutes each, results under $OUT.
#
#   bash tools/gpu_session.sh STAGE        (from the repository root, on the GPU machine)
#
# Stages, in the order to run them (one device call each; the machine keeps the built
# extension between calls while it stays warm):
#   setup          nvidia-smi, versions, build sdekit._C ahead of time, `sdekit info`
#   tests          the whole test suite on the GPU (gpu-marked tests included, Triton compiled
#                  for the device instead of interpreted), 8 pytest-xdist workers
#   bench-dawson   benchmarks/bench_dawson.py   -> $OUT/bench-dawson.{json,md}
#   bench-solvers  benchmarks/bench_solvers.py  -> $OUT/bench-solvers.{json,md}
#   bench-inverse  benchmarks/bench_inverse.py  -> $OUT/bench-inverse.{json,md}
#   examples       driftrec_jpeg.py and dmps_restore.py on CUDA with the committed nets, then
#                  trained anew on CUDA (checkpoints to $OUT/checkpoints; the repo's stay) and
#                  evaluated with those: training times are in the checkpoints' meta
#
# The .md files are tools/bench_report.py tables (ratios side by side, fraction of copy
# bandwidth) ready for benchmarks/RESULTS.md.  torchsde is not on the GPU image: for the
# torchsde rows, fetch its wheels here first (see /work/.library/device/README.md) with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#       torchsde==0.2.6 trampoline==0.1.2
# and name .whl in the call's carry; this script installs them to /tmp/site when present.
set -uo pipefail
stage=${1:?usage: bash tools/gpu_session.sh setup|tests|bench-dawson|bench-solvers|bench-inverse|examples}
OUT=${OUT:-/tmp/sdekit-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ] && ls .whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

bench() {  # bench NAME: one benchmark file, its JSON and its report table
    python3 -m pytest "benchmarks/bench_$1.py" --benchmark-only -q -p no:cacheprovider \
        --benchmark-json "$OUT/bench-$1.json" 2>&1 | tee "$OUT/bench-$1.log"
    python3 tools/bench_report.py "$OUT/bench-$1.json" | tee "$OUT/bench-$1.md"
}

case "$stage" in
setup)
    nvidia-smi | tee "$OUT/nvidia-smi.txt"
    python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
    nvcc --version | tail -2
    SDEKIT_BUILD_CUDA=1 python3 setup.py build_ext --inplace > "$OUT/build.log" 2>&1; echo "build_ext rc=$?"
    tail -5 "$OUT/build.log"
    python3 -m sdekit.cli info | tee "$OUT/info.txt"
    ;;
tests)
    python3 -m pytest -q -p no:cacheprovider -n 8 -m "not slow" -rs 2>&1 | tee "$OUT/tests.log" | tail -40
    ;;
bench-dawson | bench-solvers | bench-inverse)
    bench "${stage#bench-}"
    ;;
examples)
    # stdout: the examples' tables; stderr (progress bars) to a file
    python3 - "$OUT" <<'EOF' 2> "$OUT/examples.stderr" | tee "$OUT/examples.log"
import json, sys
sys.path.insert(0, "examples")
import driftrec_jpeg, dmps_restore
out, cuda = sys.argv[1], ["--device", "cuda", "--no-figure", "--threads", "8"]
runs = {"driftrec_jpeg": driftrec_jpeg.main(cuda), "dmps_restore": dmps_restore.main(cuda),
        "driftrec_jpeg --train": driftrec_jpeg.main([*cuda, "--train", "--checkpoints", f"{out}/checkpoints"]),
        "dmps_restore --train": dmps_restore.main([*cuda, "--train", "--checkpoint", f"{out}/checkpoints/dmps.pt"])}
summary = {name: {"seconds": r["seconds"], "rows": {str(k): v for k, v in r["rows"].items()}} for name, r in runs.items()}
json.dump(summary, open(f"{out}/examples-cuda.json", "w"), indent=1, default=str)
EOF
    ;;
*)
    echo "unknown stage $stage" >&2
    exit 2
    ;;
esac
