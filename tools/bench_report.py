"""Tables for ``benchmarks/RESULTS.md`` from pytest-benchmark JSON files.

    pytest benchmarks --benchmark-only --benchmark-json out.json
    python tools/bench_report.py out.json [more.json ...]

Rows are grouped by the benchmark's ``group`` when it sets one, otherwise by the test
function and every parameter except ``impl`` / ``backend``, so that the implementations
of one operation at one size sit side by side; with several files, each file's groups
stay apart (two runs of one suite are compared table to table, not mixed).  Per row: the minimum and median time,
the ratio of the group's baseline to this row's minimum (how many times faster than the
baseline; ``--baseline`` lists candidate impls, the first one present in a group is used), and, where the group has a
``copy`` row, the fraction of copy bandwidth: ``GB/s / GB/s(copy)`` from ``extra_info``
when both carry it, else ``t(copy) / t`` (right for element-wise maps that read and write
as many bytes as the copy).  Minimum times are the ones compared: on a GPU they are the
least disturbed by other work.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

IMPL_KEYS = ("impl", "backend")
# the eager-torch way of each suite: bench_solvers, bench_dawson (GPU, CPU), bench_inverse
DEFAULT_BASELINES = ("eager", "torch", "test_cpu_scipy", "test_likelihood_score_ddrm_style",
                     "test_em_step_eager")


def group_key(bench: dict) -> str:
    if bench.get("group"):
        return bench["group"]
    params = {k: v for k, v in (bench.get("params") or {}).items() if k not in IMPL_KEYS}
    name = bench["name"].split("[")[0]
    return name + ("[" + ", ".join(f"{k}={v}" for k, v in sorted(params.items())) + "]" if params else "")


def impl_of(bench: dict) -> str:
    params = bench.get("params") or {}
    for k in IMPL_KEYS:
        if k in params:
            return str(params[k])
    return bench["name"].split("[")[0]


def fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def table(benches: list[dict], baseline: str) -> str:
    groups: dict[str, list[dict]] = defaultdict(list)
    for b in benches:
        groups[group_key(b)].append(b)
    lines = []
    for key in sorted(groups):
        rows = sorted(groups[key], key=lambda b: b["stats"]["min"])
        by_impl = {impl_of(b): b for b in rows}
        base_name = next((name for name in baseline if name in by_impl), None)
        base = by_impl.get(base_name)
        copy = by_impl.get("copy")
        device = next((b["extra_info"].get("device") for b in rows if b.get("extra_info", {}).get("device")), "")
        lines += [f"\n**{key}**" + (f" ({device})" if device else ""), "",
                  f"| impl | min | median | {base_name or 'baseline'} / this | of copy bandwidth |",
                  "|---|---|---|---|---|"]
        for b in rows:
            t = b["stats"]["min"]
            ratio = f"{base['stats']['min'] / t:.2f}x" if base is not None else "-"
            if copy is not None and b is not copy:
                gbs, gbs_copy = b.get("extra_info", {}).get("GB/s"), copy.get("extra_info", {}).get("GB/s")
                frac = gbs / gbs_copy if gbs and gbs_copy else copy["stats"]["min"] / t
                frac = f"{100 * frac:.0f}%"
            else:
                frac = "-"
            lines.append(f"| {impl_of(b)} | {fmt_time(t)} | {fmt_time(b['stats']['median'])} | {ratio} | {frac} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", help="pytest-benchmark JSON files")
    p.add_argument("--baseline", default=",".join(DEFAULT_BASELINES),
                   help="comma-separated impls whose time the ratios divide; the first one a group has "
                        f"is used (default: {','.join(DEFAULT_BASELINES)})")
    args = p.parse_args(argv)
    benches = []
    for path in args.files:
        with open(path) as f:
            data = json.load(f)
        machine = data.get("machine_info", {})
        print(f"<!-- {path}: {machine.get('node', '?')}, {machine.get('cpu', {}).get('brand_raw', '?')}, "
              f"{data.get('datetime', '?')} -->")
        for b in data.get("benchmarks", []):   # one group per file: runs of one suite are not mixed
            b["group"] = group_key(b) + (f" — {path}" if len(args.files) > 1 else "")
            benches.append(b)
    if not benches:
        print("no benchmarks in the given files", file=sys.stderr)
        return 1
    print(table(benches, args.baseline.split(",")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
