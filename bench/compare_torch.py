#!/usr/bin/python3
"""PyTorch CPU peers of our benchmarks, timed in the same run as ours, with ratios.

  /usr/bin/python3 bench/compare_torch.py [--build build-bench] [--threads 2] [--ns-repeats 1]

Times, with torch.set_num_threads(threads):
  - torch.optim.Adam(foreach=True) on GPT-2 small's tensor set (124.4M float parameters, the
    same shapes as bench/bench_step.cpp), one step, after one untimed step;
  - the reference quintic Newton-Schulz loop (5 steps, a=3.4445, b=-4.7750, c=2.0315, Frobenius
    prescale, transposed when tall) written in torch, float, at 768x3072 and 1024x4096;
then runs our bench binaries with --benchmark_format=json for the same cases and prints
torch / ours. Exits 0 with a message when torch cannot be imported (it is only visible to
/usr/bin/python3 on the lab machine). Note which BLAS torch uses (printed): Debian's torch
links the reference (netlib) BLAS unless an optimized one is installed as the alternative.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def gpt2_shapes():
    d = 768
    shapes = [(50257, d), (1024, d)]
    for _ in range(12):
        shapes += [(d,), (d,), (3 * d, d), (3 * d,), (d, d), (d,), (d,), (d,), (4 * d, d), (4 * d,), (d, 4 * d), (d,)]
    shapes += [(d,), (d,)]
    return shapes


def time_torch_adam(torch, repeats):
    gen = torch.Generator().manual_seed(1)
    params = []
    for s in gpt2_shapes():
        p = torch.nn.Parameter(torch.randn(*s, generator=gen) * 0.02)
        p.grad = torch.randn(*s, generator=gen) * 0.02
        params.append(p)
    n = sum(p.numel() for p in params)
    opt = torch.optim.Adam(params, lr=1e-3, foreach=True)
    opt.step()  # untimed: allocates the state
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        opt.step()
        best = min(best, time.perf_counter() - t0)
    del opt, params
    return best, n


def torch_ns(torch, g, steps=5):
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g / (g.norm() + 1e-7)
    tall = g.size(0) > g.size(1)
    if tall:
        x = x.T
    for _ in range(steps):
        A = x @ x.T
        B = b * A + c * (A @ A)
        x = a * x + B @ x
    return x.T if tall else x


def time_torch_ns(torch, rows, cols, repeats):
    g = torch.randn(rows, cols, generator=torch.Generator().manual_seed(2))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch_ns(torch, g)
        best = min(best, time.perf_counter() - t0)
    return best


def run_ours(binary, args):
    """Runs one of our Google Benchmark programs, returns {function name: seconds per iteration}."""
    path = os.path.join(binary)
    if not os.path.exists(path):
        sys.exit(f"compare_torch: {path} not found; build it first (see bench/README.md)")
    out = subprocess.run([path, "--benchmark_format=json"] + args, check=True, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout
    unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    times = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "min":
            continue
        name = b["run_name"].split("/iterations:")[0].split("/real_time")[0]
        t = b["real_time"] * unit[b["time_unit"]]
        times[name] = min(t, times.get(name, float("inf")))
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"), help="CMake build directory with bench/")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--adam-repeats", type=int, default=3)
    ap.add_argument("--ns-repeats", type=int, default=1, help="torch NS runs per shape (slow with reference BLAS)")
    opts = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("compare_torch: torch is not importable by this Python (%s); skipping." % sys.executable)
        return 0

    torch.set_num_threads(opts.threads)
    blas = [l.strip() for l in torch.__config__.show().splitlines() if "BLAS_INFO" in l or "LAPACK" in l]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {'; '.join(blas)[:200]}")
    bench = os.path.join(opts.build, "bench")

    rows = []
    # Adam on GPT-2 small: ours in the same run (the fused pass too, for reference).
    t_torch, n = time_torch_adam(torch, opts.adam_repeats)
    ours = run_ours(os.path.join(bench, "bench_step"),
                    [f"--threads={opts.threads}", "--skip_memory", "--benchmark_filter=^(step/adam|step_unchecked/adam|fused)/"])
    rows.append(("Adam step, GPT-2 124M", t_torch, ours.get("step/adam")))
    rows.append(("Adam step (unchecked)", t_torch, ours.get("step_unchecked/adam")))
    print(f"torch.optim.Adam(foreach=True): {n} parameters, {t_torch * 1e3:.1f} ms "
          f"({28 * n / t_torch * 1e-9:.1f} GB/s at 28 B/param); our fused pass {ours.get('fused', float('nan')) * 1e3:.1f} ms")

    # Newton-Schulz, float, 5 quintic steps.
    ns_ours = run_ours(os.path.join(bench, "bench_newton_schulz"),
                       [f"--benchmark_filter=^ns/(768x3072|1024x4096)/(ours|ref)/threads:{opts.threads}/"])
    for shape in ("768x3072", "1024x4096"):
        r, c = map(int, shape.split("x"))
        t = time_torch_ns(torch, r, c, opts.ns_repeats)
        rows.append((f"NS {shape} (ours)", t, ns_ours.get(f"ns/{shape}/ours/threads:{opts.threads}")))
        rows.append((f"NS {shape} (our plain Eigen ref)", t, ns_ours.get(f"ns/{shape}/ref/threads:{opts.threads}")))

    print(f"\n{'case':34s} {'torch ms':>10s} {'ours ms':>10s} {'torch/ours':>11s}")
    for name, t, o in rows:
        if o is None:
            print(f"{name:34s} {t * 1e3:10.1f} {'n/a':>10s}")
        else:
            print(f"{name:34s} {t * 1e3:10.1f} {o * 1e3:10.1f} {t / o:11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
