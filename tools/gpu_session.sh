#!/usr/bin/env bash
# The first GPU run of issue 19 as ONE device command of at most 8 minutes, results under $OUT.
#
#   bash tools/gpu_session.sh [--dry-run]        (from the repository root, on the GPU machine)
#
# In priority order, each stage bounded by what is left of SDEKIT_GPU_BUDGET_S (default 450 s,
# so the command ends inside the 8 minutes with the transfers), each writing under $OUT as it
# goes, so a timeout loses nothing measured:
#   1. versions, what is importable, the extensions built once (time, errors): the CUDA
#      kernels `sdekit._C` first, then the host `cpu` backend `sdekit._cpu`, both from
#      sdekit/csrc; then `sdekit info`, the backends each op's front door can use on cpu and
#      cuda                                                                  -> session.log
#   2. the `gpu`-marked tests only, Triton compiled for the device            -> tests-gpu.log
#   3. tools/gpu_timing.py: copy / eager / torch.compile / Triton / CUDA / cpu side by side in
#      one process at 2^20 and 2^26 float32 for the EM step and dawsn, through the ops' front
#      doors; the 100-step loop at 2^10 eagerly and from a CUDA graph; the DMPS score at batch 1
#      (deblur, SR x4); CUDA events, no pytest needed                        -> timing.{json,md}
#   4. if time is left: benchmarks/bench_{solvers,dawson,inverse}.py with pytest-benchmark
#      (stopped with SIGINT when the budget runs out: pytest-benchmark still writes its JSON)
#                                                -> bench-<name>.json, bench.md (report tables)
# That is 8 files at most, all directly under $OUT (the device returns at most 8 files, each
# <= 16 MiB, at most 2 folders deep).
#
# Packages: stage 2 needs pytest and hypothesis (tests/conftest.py imports it), stage 4
# pytest-benchmark; stage 3 needs only torch.  The H200 image lists all three (KINDS.md); if a
# machine lacks one, the stage says so and is skipped.  To carry wheels (no package index
# there; see /work/.library/device/README.md), here in the repository root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl pytest==8.4.2 pluggy==1.6.0 iniconfig==2.1.0 packaging==25.0 hypothesis==6.140.2 \
#       attrs==25.3.0 sortedcontainers==2.4.0 pytest-benchmark==5.1.0 py-cpuinfo==9.0.0
# (pure-Python wheels: --platform is ignored for them; keep one version of each), name `.whl`
# in the call's `carry`; this script installs them to /tmp/site when the folder is there.
#
# --dry-run (any machine, no GPU): builds nothing, runs the gpu tests' collection only and
# gpu_timing.py --dry-run on the CPU, benchmarks collected only; checks stage order, budget
# arithmetic and the files written (tests/test_gpu_session.py does this).
set -uo pipefail
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT=${OUT:-/tmp/sdekit-gpu}
BUDGET=${SDEKIT_GPU_BUDGET_S:-450}
mkdir -p "$OUT"
LOG="$OUT/session.log"
: > "$LOG"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}

say() { echo "$*" | tee -a "$LOG"; }
left() { echo $((BUDGET - SECONDS)); }
# bounded CAP CMD...: run CMD for at most CAP seconds and never past the budget (SIGINT first,
# so pytest writes what it measured; SIGKILL 10 s later)
bounded() {
    local cap=$1 t
    shift
    t=$(left)
    [ "$t" -gt "$cap" ] && t=$cap
    if [ "$t" -lt 15 ]; then
        say "skipped (only $(left) s of the budget left): $*"
        return 124
    fi
    timeout -s INT -k 10 "$t" "$@"
}
has() { "$PY" -c "import $1" > /dev/null 2>&1; }

if [ -d .whl ] && ls .whl/*.whl > /dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

say "=== 1. setup ($(date +%T), budget ${BUDGET} s, dry run: $DRY)"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv 2>&1
    "$PY" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.is_available())"
    "$PY" -c "import triton; print('triton', triton.__version__)" 2>&1
    nvcc --version 2>&1 | tail -1
    for m in pytest hypothesis pytest_benchmark xdist; do has "$m" && echo "importable: $m" || echo "MISSING: $m"; done
} 2>&1 | tee -a "$LOG"
# build EXT CAP CUDA CPU: `setup.py build_ext --inplace` of one extension (SDEKIT_BUILD_CUDA /
# SDEKIT_BUILD_CPU select it), unless already built; the CUDA one first, as the GPU run needs it
build() {
    local ext=$1 cap=$2 t0=$SECONDS rc
    ls sdekit/"$ext"*.so > /dev/null 2>&1 && { say "sdekit.$ext already built"; return 0; }
    SDEKIT_BUILD_CUDA=$3 SDEKIT_BUILD_CPU=$4 bounded "$cap" "$PY" setup.py build_ext --inplace \
        > "/tmp/sdekit-build$ext.log" 2>&1
    rc=$?
    ls sdekit/"$ext"*.so > /dev/null 2>&1 || rc="$rc, sdekit.$ext missing"  # optional: a failed build is not fatal
    say "build_ext sdekit.$ext rc=$rc in $((SECONDS - t0)) s"
    case "$rc" in
        0) ;;
        *) grep -n -i -B2 -A6 "error" "/tmp/sdekit-build$ext.log" | head -80 | tee -a "$LOG" ;;
    esac
}
if [ "$DRY" = 0 ]; then
    build _C 240 1 0
    build _cpu 120 0 1
fi
export SDEKIT_CUDA_JIT=0  # no test or benchmark process retries a failed build just in time
"$PY" -m sdekit.cli info 2>&1 | grep "^backend" | tee -a "$LOG"

say "=== 2. gpu-marked tests ($(date +%T), $(left) s left)"
if has pytest && has hypothesis; then
    if [ "$DRY" = 1 ]; then
        bounded 120 "$PY" -m pytest -q -p no:cacheprovider -m gpu --collect-only -qq tests > "$OUT/tests-gpu.log" 2>&1
    else
        bounded 120 "$PY" -m pytest -q -p no:cacheprovider -m gpu -rs tests > "$OUT/tests-gpu.log" 2>&1
    fi
    say "pytest rc=$?: $(grep . "$OUT/tests-gpu.log" | tail -1)"
else
    say "skipped: pytest or hypothesis is not importable (carry wheels: see this script's header)"
fi

say "=== 3. side-by-side timings ($(date +%T), $(left) s left)"
timing_args=("$OUT")
[ "$DRY" = 1 ] && timing_args+=(--dry-run)
bounded 240 "$PY" tools/gpu_timing.py "${timing_args[@]}" > /tmp/sdekit-timing.log 2>&1
say "gpu_timing rc=$?"
grep -v '^{' /tmp/sdekit-timing.log | tail -20 | tee -a "$LOG"

say "=== 4. benchmark files ($(date +%T), $(left) s left)"
if has pytest_benchmark && has hypothesis; then
    : > "$OUT/bench.md"
    for name in solvers dawson inverse; do
        if [ "$DRY" = 1 ]; then
            bounded 60 "$PY" -m pytest "benchmarks/bench_$name.py" -q -p no:cacheprovider --collect-only -qq \
                >> "$LOG" 2>&1
            continue
        fi
        bounded 180 "$PY" -m pytest "benchmarks/bench_$name.py" --benchmark-only -q -p no:cacheprovider \
            --benchmark-json "$OUT/bench-$name.json" 2>&1 | tail -5 | tee -a "$LOG"
        [ -s "$OUT/bench-$name.json" ] && "$PY" tools/bench_report.py "$OUT/bench-$name.json" >> "$OUT/bench.md" 2>&1
    done
else
    say "skipped: pytest-benchmark or hypothesis is not importable; stage 3 measured the priority rows without them"
fi
say "=== done ($(date +%T), $SECONDS s)"
