#!/usr/bin/python3
"""PyTorch CPU peers of our benchmarks, timed in the same run as ours, at several thread counts.

  python3 bench/compare_torch.py [--build build-bench] [--threads 1,2,4,8,16] [--repeats 3]
                                 [--shapes 768x3072,1024x4096,2048x2048,4096x4096] [--skip-steps] [--bf16]

For each thread count t, torch with torch.set_num_threads(t) times (min over --repeats runs,
after one untimed run):
  - Newton-Schulz, float: the quintic loop of ALGORITHMS.md (5 steps, a=3.4445, b=-4.7750,
    c=2.0315, Frobenius prescale + 1e-7, transposed when tall; A = X X^T, B = b A + c A A,
    X = a X + B X), i.e. torch.optim.Muon's iteration without its bf16 cast;
  - the sgemm rate of its BLAS (MKL on pip wheels; netlib or OpenBLAS on Debian's torch) on each
    shape's largest product, r x r times r x c;
  - copy bandwidth: dst.copy_(src) over 1 GiB, counted as bytes read + bytes written;
  - AdamW on GPT-2 small's tensor set (124.4M float parameters, bench/bench_step.cpp's shapes):
    torch.optim.AdamW(fused=True), or foreach=True where fused is absent (torch 1.13);
  - Muon + AdamW on the rest (the split of bench_step: hidden matrices to Muon; wte, wpe and
    vectors to AdamW), with torch.optim.Muon's Newton-Schulz replaced by the float loop above;
    skipped, with a note, when torch has no torch.optim.Muon. Our Mango step is set against the
    same torch Muon step.
With --bf16 also (issue 17): torch's bf16 Newton-Schulz, i.e. torch.optim.Muon's own function
(bf16 by default; a transcription of its addmm loop in bf16 where torch has no Muon), with its
distance to the float loop above (relative Frobenius, the same input); torch.optim.Muon's default
step (bf16 NS, unpatched) against our Muon with spectral(compute=bf16) (bench_step's
step/muon_bf16); and our bench_bf16_ns (bf16 NS through oneDNN, needs -DDUALOPT_BF16=onednn).
Then our bench programs run at the same t, on the same shapes (bench_newton_schulz
--threads=t, bench_step --threads=t), and one table prints ms, torch / ours and rates.
Exits 0 with a message when torch cannot be imported.
"""
import argparse
import inspect
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NS_ABC = (3.4445, -4.7750, 2.0315)


def gpt2_shapes():
    d = 768
    shapes = [("wte", (50257, d)), ("wpe", (1024, d))]
    for _ in range(12):
        shapes += [("ln", (d,)), ("ln", (d,)), ("qkv", (3 * d, d)), ("b", (3 * d,)), ("proj", (d, d)), ("b", (d,)),
                   ("ln", (d,)), ("ln", (d,)), ("fc", (4 * d, d)), ("b", (4 * d,)), ("fcproj", (d, 4 * d)), ("b", (d,))]
    shapes += [("ln", (d,)), ("ln", (d,))]
    return shapes


def best_of(f, repeats):
    f()  # untimed: allocations, state, thread pool
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def torch_ns_float(torch, g, steps=5, eps=1e-7, abc=NS_ABC):
    a, b, c = abc
    x = g / (g.norm() + eps)
    tall = g.size(0) > g.size(1)
    if tall:
        x = x.T
    for _ in range(steps):
        A = x @ x.T
        B = b * A + c * (A @ A)
        x = a * x + B @ x
    return x.T if tall else x


ORIGINAL_NS = {}  # (module name, function name) -> torch.optim.Muon's own function, before any patch


def original_muon_ns(torch):
    """[(module, name, original function)] of torch.optim.Muon's Newton-Schulz; [] without Muon."""
    out = []
    for mod, n in muon_ns_functions(torch):
        f = getattr(mod, n)
        if not getattr(f, "_dualopt_float", False):
            ORIGINAL_NS.setdefault((mod.__name__, n), f)
        if (mod.__name__, n) in ORIGINAL_NS:
            out.append((mod, n, ORIGINAL_NS[(mod.__name__, n)]))
    return out


def torch_ns_bf16(torch, g, steps=5, eps=1e-7, abc=NS_ABC):
    """torch.optim.Muon's default Newton-Schulz (bf16), or its addmm loop transcribed in bf16."""
    for _, _, f in original_muon_ns(torch)[:1]:
        names = list(inspect.signature(f).parameters)
        args = {"ns_coefficients": abc, "ns_steps": steps, "eps": eps}
        return f(g, **{p: args[p] for p in names[1:] if p in args})
    a, b, c = abc
    x = g.bfloat16()
    tall = g.size(0) > g.size(1)
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


def make_model(torch):
    gen = torch.Generator().manual_seed(1)
    params = []
    for name, s in gpt2_shapes():
        p = torch.nn.Parameter(torch.randn(*s, generator=gen) * 0.02)
        p.grad = torch.randn(*s, generator=gen) * 0.02
        params.append((name, p))
    return params


def adamw(torch, params):
    try:
        return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01, fused=True), "fused"
    except (TypeError, RuntimeError):
        return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01, foreach=True), "foreach"


def muon_ns_functions(torch):
    """torch.optim.Muon's own Newton-Schulz functions, as [(module, name)]; [] without Muon.

    Muon's class may report a public module name (torch.optim) while its step calls a function of
    its private module (torch.optim._muon), so both are searched."""
    if not hasattr(torch.optim, "Muon"):
        return []
    import importlib
    found = []
    for modname in (torch.optim.Muon.__module__, "torch.optim._muon"):
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue
        for n in dir(mod):
            if ("zeropower" in n.lower() or "newton" in n.lower()) and callable(getattr(mod, n)):
                if (mod, n) not in found:
                    found.append((mod, n))
    return found


def patch_muon_float(torch):
    """torch.optim.Muon's Newton-Schulz with the bf16 cast removed; returns False without Muon.
    unpatch_muon() puts the original (bf16) function back."""
    found = original_muon_ns(torch)
    if not found:
        return False
    for mod, n, orig in found:
        sig = inspect.signature(orig)

        def float_ns(*args, _sig=sig, **kw):
            bound = _sig.bind(*args, **kw)
            bound.apply_defaults()
            v = list(bound.arguments.values())
            grad = v[0]
            coeffs = bound.arguments.get("ns_coefficients", NS_ABC)
            steps = bound.arguments.get("ns_steps", 5)
            eps = bound.arguments.get("eps", 1e-7)
            return torch_ns_float(torch, grad.float(), steps, eps, coeffs).to(grad.dtype)

        float_ns._dualopt_float = True
        setattr(mod, n, float_ns)
    return True


def unpatch_muon(torch):
    for mod, n, orig in original_muon_ns(torch):
        setattr(mod, n, orig)


def time_torch(torch, t, shapes, repeats, steps, step_repeats, kinds, bf16=False):
    torch.set_num_threads(t)
    res = {}
    gen = torch.Generator().manual_seed(2)
    for (r, c) in shapes:
        g = torch.randn(r, c, generator=gen)
        res[f"ns/{r}x{c}"] = best_of(lambda: torch_ns_float(torch, g), repeats)
        if bf16:
            res[f"ns_bf16/{r}x{c}"] = best_of(lambda: torch_ns_bf16(torch, g), repeats)
            yf, yb = torch_ns_float(torch, g), torch_ns_bf16(torch, g).float()
            res[f"ns_bf16_err/{r}x{c}"] = float((yb - yf).norm() / yf.norm())
        m, n = min(r, c), max(r, c)
        a, b = torch.randn(m, m, generator=gen), torch.randn(m, n, generator=gen)
        out = torch.empty(m, n)
        res[f"sgemm/{r}x{c}"] = 2.0 * m * m * n / best_of(lambda: torch.mm(a, b, out=out), repeats)
    src = torch.randn(1 << 28, generator=gen)
    dst = torch.empty_like(src)
    res["copy"] = 2 * 4 * src.numel() / best_of(lambda: dst.copy_(src), repeats)
    del src, dst
    if steps:
        params = make_model(torch)
        opt, kind = adamw(torch, [p for _, p in params])
        res["adamw"] = best_of(opt.step, step_repeats)
        res["adamw_kind"] = kind
        res["nparams"] = sum(p.numel() for _, p in params)
        del opt
        hidden = [p for n, p in params if n in ("qkv", "proj", "fc", "fcproj")]
        rest = [p for n, p in params if n not in ("qkv", "proj", "fc", "fcproj")]
        if bf16 and hasattr(torch.optim, "Muon"):  # torch.optim.Muon's default: bf16 Newton-Schulz
            unpatch_muon(torch)
            muon = torch.optim.Muon(hidden, lr=0.02)
            aux, _ = adamw(torch, rest)
            res["muon_bf16"] = best_of(lambda: (muon.step(), aux.step()), step_repeats)
            del muon, aux
        if ("muon" in kinds or "mango" in kinds) and patch_muon_float(torch):
            muon = torch.optim.Muon(hidden, lr=0.02)
            aux, _ = adamw(torch, rest)
            res["muon"] = best_of(lambda: (muon.step(), aux.step()), step_repeats)
            del muon, aux
            unpatch_muon(torch)
        del params
    return res


def run_ours(binary, args):
    """Runs one of our Google Benchmark programs, returns {function name: seconds per iteration}."""
    if not os.path.exists(binary):
        sys.exit(f"compare_torch: {binary} not found; build it first (see bench/README.md)")
    run = subprocess.run([binary, "--benchmark_format=json"] + args, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    try:
        benchmarks = json.loads(run.stdout)["benchmarks"]
    except (ValueError, KeyError):
        print(f"compare_torch: {os.path.basename(binary)} {' '.join(args)} gave no results (exit {run.returncode})")
        return {}
    unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    times = {}
    for b in benchmarks:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "min":
            continue
        name = b["run_name"].split("/iterations:")[0].split("/real_time")[0]
        times[name] = min(b["real_time"] * unit[b["time_unit"]], times.get(name, float("inf")))
    return times


def time_ours(bench, t, shapes, repeats, steps, step_repeats, kinds, bf16=False):
    names = "|".join(f"{r}x{c}" for r, c in shapes)
    ns = run_ours(os.path.join(bench, "bench_newton_schulz"),
                  [f"--threads={t}", f"--benchmark_filter=^ns/({names})/(ours|onednn|gemm)/threads:{t}/",
                   f"--benchmark_repetitions={repeats}", "--benchmark_min_time=0.2"])
    res = {}
    for r, c in shapes:
        # the float NS's default: oneDNN's products where the build has them (DUALOPT_BLAS=onednn)
        res[f"ns/{r}x{c}"] = ns.get(f"ns/{r}x{c}/onednn/threads:{t}") or ns.get(f"ns/{r}x{c}/ours/threads:{t}")
        g = ns.get(f"ns/{r}x{c}/gemm/threads:{t}")
        m, n = min(r, c), max(r, c)
        res[f"sgemm/{r}x{c}"] = 2.0 * m * m * n / g if g else None
    if bf16:
        nb = run_ours(os.path.join(bench, "bench_bf16_ns"),
                      [f"--threads={t}", f"--benchmark_filter=^ns/({names})/bf16/threads:{t}/",
                       f"--benchmark_repetitions={repeats}", "--benchmark_min_time=0.2"])
        for r, c in shapes:
            res[f"ns_bf16/{r}x{c}"] = nb.get(f"ns/{r}x{c}/bf16/threads:{t}")
    if steps:
        all_kinds = kinds + (["muon_bf16"] if bf16 else [])
        st = run_ours(os.path.join(bench, "bench_step"),
                      [f"--threads={t}", "--skip_memory", f"--benchmark_repetitions={step_repeats}",
                       f"--benchmark_filter=^(fused|step/({'|'.join(all_kinds)})|step_unchecked/adamw)/"])
        res.update({k: st.get(v) for k, v in [("adamw", "step/adamw"), ("laprop", "step/laprop"),
                                              ("adamw_unchecked", "step_unchecked/adamw"), ("fused", "fused"),
                                              ("muon", "step/muon"), ("mango", "step/mango"),
                                              ("muon_bf16", "step/muon_bf16")]})
    return res


def naive_ns_flops(r, c, steps=5):
    m, n = min(r, c), max(r, c)
    return steps * (4.0 * m * m * n + 2.0 * m ** 3)


def print_table(rows):
    print(f"\n{'work':28s} {'threads':>7s} {'ours ms':>9s} {'torch ms':>9s} {'torch/ours':>10s}  notes")
    for work, t, o, tr, extra in rows:
        fo = f"{o * 1e3:9.1f}" if o else f"{'n/a':>9s}"
        ft = f"{tr * 1e3:9.1f}" if tr else f"{'n/a':>9s}"
        ratio = f"{tr / o:10.2f}" if o and tr else f"{'n/a':>10s}"
        print(f"{work:28s} {t:7d} {fo} {ft} {ratio}  {extra}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"), help="CMake build directory with bench/")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts, e.g. 1,2,4,8,16")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per case (min is reported)")
    ap.add_argument("--shapes", default="768x3072,1024x4096,2048x2048,4096x4096")
    ap.add_argument("--skip-steps", action="store_true", help="Newton-Schulz, sgemm and copy only")
    ap.add_argument("--step-repeats", type=int, default=None, help="timed runs per optimizer step (default --repeats)")
    ap.add_argument("--step-kinds", default="adamw,laprop,muon,mango", help="our steps to time (Muon's are slow)")
    ap.add_argument("--torch-only", action="store_true", help="do not run our binaries")
    ap.add_argument("--bf16", action="store_true", help="also bf16 Newton-Schulz and Muon's default bf16 step")
    opts = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("compare_torch: torch is not importable by this Python (%s); skipping." % sys.executable)
        return 0
    threads = [int(x) for x in opts.threads.split(",") if x]
    shapes = [tuple(int(v) for v in s.split("x")) for s in opts.shapes.split(",") if s]
    steps = not opts.skip_steps
    blas = [l.strip() for l in torch.__config__.show().splitlines() if "BLAS_INFO" in l or "LAPACK_INFO" in l]
    print(f"torch {torch.__version__}; {'; '.join(blas)[:200]}; torch.optim.Muon: {hasattr(torch.optim, 'Muon')}",
          flush=True)
    bench = os.path.join(opts.build, "bench")

    rows = []  # (work, threads, ours s, torch s, extra)
    for t in threads:
        sr = opts.step_repeats or opts.repeats
        kinds = [k for k in opts.step_kinds.split(",") if k]
        tt = time_torch(torch, t, shapes, opts.repeats, steps, sr, kinds, opts.bf16)
        oo = {} if opts.torch_only else time_ours(bench, t, shapes, opts.repeats, steps, sr, kinds, opts.bf16)
        for r, c in shapes:
            k = f"ns/{r}x{c}"
            eff = naive_ns_flops(r, c) / oo[k] * 1e-9 if oo.get(k) else float("nan")
            rows.append((f"NS {r}x{c}", t, oo.get(k), tt[k],
                         f"eff {eff:.0f} GF/s; sgemm torch {tt['sgemm/%dx%d' % (r, c)] * 1e-9:.0f}, "
                         f"Eigen {(oo.get('sgemm/%dx%d' % (r, c)) or float('nan')) * 1e-9:.0f}"))
        if opts.bf16:
            for r, c in shapes:
                k = f"ns_bf16/{r}x{c}"
                rows.append((f"NS bf16 {r}x{c}", t, oo.get(k), tt[k],
                             f"torch bf16 vs float {tt['ns_bf16_err/%dx%d' % (r, c)]:.2e} (ours: tool_bf16_accuracy)"))
        rows.append(("copy bandwidth (torch)", t, None, None, f"{tt['copy'] * 1e-9:.1f} GB/s (read + write)"))
        if steps:
            n = tt["nparams"]
            for k in ("adamw", "laprop", "adamw_unchecked"):
                o = oo.get(k)
                gbs = 28.0 * n / o * 1e-9 if o else float("nan")
                rows.append((f"{k} step, GPT-2 124M", t, o, tt["adamw"],
                             f"torch AdamW {tt['adamw_kind']}; ours {gbs:.1f} GB/s, copy {tt['copy'] * 1e-9:.1f} GB/s"))
            if oo.get("fused"):
                rows.append(("our plain 28 B/param pass", t, oo["fused"], tt["adamw"],
                             f"bench_step's fused baseline (Adam's bytes, no math): {28.0 * n / oo['fused'] * 1e-9:.1f} GB/s"))
            for k in ("muon", "mango"):
                if k not in kinds:  # not asked for (--step-kinds)
                    continue
                rows.append((f"{k} step, GPT-2 124M", t, oo.get(k), tt.get("muon"),
                             "vs torch.optim.Muon, float NS" if "muon" in tt else "torch has no torch.optim.Muon"))
            if opts.bf16:
                rows.append(("muon bf16 step, GPT-2 124M", t, oo.get("muon_bf16"), tt.get("muon_bf16"),
                             "vs torch.optim.Muon's default (bf16 NS)" if "muon_bf16" in tt
                             else "torch has no torch.optim.Muon"))
        print(f"... {t} threads done", flush=True)
        print_table([r for r in rows if r[1] == t])

    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
