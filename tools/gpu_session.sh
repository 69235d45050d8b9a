#!/usr/bin/env bash
# The GPU work of issues 3-6 as device calls of under 10 minutes each, results under $OUT.
#
#   bash tools/gpu_session.sh STAGE [STAGE ...]   (from the repository root, on the GPU machine)
#
# Stages (several per call: a machine is handed back 30 s after a call, so every call may
# start bare and pays the machine start plus the ~1-2 min extension build once):
#   setup          nvidia-smi, versions, `sdekit info`                -> $OUT/setup.txt
#   tests          the whole test suite on the GPU (gpu-marked tests included, Triton compiled
#                  for the device instead of interpreted), 8 pytest-xdist workers -> tests.log
#   bench-dawson   benchmarks/bench_dawson.py   -> $OUT/bench-dawson.{json,md}
#   bench-solvers  benchmarks/bench_solvers.py  -> $OUT/bench-solvers.{json,md}
#   bench-inverse  benchmarks/bench_inverse.py  -> $OUT/bench-inverse.{json,md}
#   examples       driftrec_jpeg.py and dmps_restore.py on CUDA with the committed nets, then
#                  trained anew on CUDA and evaluated with those -> examples-cuda.json (written
#                  after each run, so a failure keeps the others), examples.log,
#                  checkpoints.tar (the CUDA-trained nets; their meta holds the training times)
#
# A plan that fits the session's 30 device minutes (at most 8 files come back per call):
#   call 1: setup tests      call 2: bench-dawson bench-inverse      call 3: bench-solvers examples
#
# Every call first builds sdekit._C ahead of time when it is missing (errors shown), then sets
# SDEKIT_CUDA_JIT=0 so no test or benchmark process retries a failed build just in time.  Each
# pytest run is stopped with SIGINT at 540 s, so pytest-benchmark still writes what it measured.
# The .md files are tools/bench_report.py tables (ratios side by side, fraction of copy
# bandwidth) ready for benchmarks/RESULTS.md.  torchsde is not on the GPU image: for the
# torchsde rows, fetch its wheels here first (see /work/.library/device/README.md) with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#       torchsde==0.2.6 trampoline==0.1.2
# and name .whl in the call's carry; this script installs them to /tmp/site when present.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: bash tools/gpu_session.sh setup|tests|bench-dawson|bench-solvers|bench-inverse|examples ..." >&2; exit 2; }
OUT=${OUT:-/tmp/sdekit-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ] && ls .whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

ensure_extension() {  # build sdekit._C once per machine; never fall back to per-process JIT builds
    if ! ls sdekit/_C*.so > /dev/null 2>&1; then
        local t0=$SECONDS
        SDEKIT_BUILD_CUDA=1 python3 setup.py build_ext --inplace > /tmp/sdekit-build.log 2>&1
        echo "build_ext rc=$? in $((SECONDS - t0)) s"
        grep -n -i -B2 -A6 "error" /tmp/sdekit-build.log | head -80
    fi
    export SDEKIT_CUDA_JIT=0
}

bench() {  # bench NAME: one benchmark file, its JSON and its report table
    timeout -s INT 540 python3 -m pytest "benchmarks/bench_$1.py" --benchmark-only -q -p no:cacheprovider \
        --benchmark-json "$OUT/bench-$1.json" 2>&1 | tail -25
    python3 tools/bench_report.py "$OUT/bench-$1.json" | tee "$OUT/bench-$1.md"
}

ensure_extension
for stage in "$@"; do
    echo "=== $stage ($(date +%T))"
    case "$stage" in
    setup)
        {
            nvidia-smi
            python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"
            nvcc --version | tail -2
            python3 -m sdekit.cli info
        } 2>&1 | tee "$OUT/setup.txt"
        ;;
    tests)
        timeout -s INT 540 python3 -m pytest -q -p no:cacheprovider -n 8 -m "not slow" -rs 2>&1 \
            | tee "$OUT/tests.log" | tail -40
        ;;
    bench-dawson | bench-solvers | bench-inverse)
        bench "${stage#bench-}"
        ;;
    examples)
        # stdout: the examples' tables; progress bars (stderr) dropped
        python3 - "$OUT" <<'EOF' 2> /dev/null | tee "$OUT/examples.log"
import json, sys, traceback
sys.path.insert(0, "examples")
import driftrec_jpeg, dmps_restore
out, cuda = sys.argv[1], ["--device", "cuda", "--no-figure", "--threads", "8"]
ck = "/tmp/sdekit-checkpoints"
runs = {"driftrec_jpeg": lambda: driftrec_jpeg.main(cuda),
        "dmps_restore": lambda: dmps_restore.main(cuda),
        "driftrec_jpeg --train": lambda: driftrec_jpeg.main([*cuda, "--train", "--checkpoints", ck]),
        "dmps_restore --train": lambda: dmps_restore.main([*cuda, "--train", "--checkpoint", f"{ck}/dmps.pt"])}
summary = {}
for name, run in runs.items():
    try:
        r = run()
        summary[name] = {"seconds": r["seconds"], "rows": {str(k): v for k, v in r["rows"].items()}}
    except Exception:  # keep going: one failure must not lose the other runs
        summary[name] = {"error": traceback.format_exc()}
        print(f"{name} FAILED:\n{summary[name]['error']}", flush=True)
    json.dump(summary, open(f"{out}/examples-cuda.json", "w"), indent=1, default=str)
EOF
        [ -d /tmp/sdekit-checkpoints ] && tar -cf "$OUT/checkpoints.tar" -C /tmp sdekit-checkpoints
        ;;
    *)
        echo "unknown stage $stage" >&2
        ;;
    esac
done
