"""Training throughput of titans-pytorch's NeuralMemory on the shapes `repro bench memory` uses, for
`repro bench --peers` (run by it; also runnable alone). Prints one JSON object on stdout.

Two semantics per chunk size C:
* default: NeuralMemory(dim, chunk_size=C): one memory update per chunk of C tokens (gates per chunk).
* paper:   NeuralMemory(dim, chunk_size=1, batch_size=C): per-token gates and surprise, gradients taken at the
           weights of the last batch boundary, i.e. Titans' Eqs. 16-18 with chunk C (the form `repro` runs).
Both use the library's defaults otherwise (MemoryMLP depth 2, expansion 4, GELU, RMSNorms, projections of the
input to q, k, v inside the module). fwd: under torch.no_grad(); fwd+bwd: loss sum(y * W) for a fixed random W,
backward to the module's parameters and the input. Tokens/s = T / median seconds after warm-up.
"""
import argparse
import importlib.metadata
import json
import statistics
import time

import torch
from titans_pytorch import NeuralMemory


def median_seconds(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--chunks", default="1,8,16,32,64")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.randn(1, a.seq, a.dim)
    w = torch.randn(1, a.seq, a.dim)
    rows = []
    for chunk in [int(c) for c in a.chunks.split(",")]:
        for semantics in ("default", "paper"):
            if semantics == "default" or chunk == 1:
                mem = NeuralMemory(a.dim, chunk_size=chunk)
            else:
                mem = NeuralMemory(a.dim, chunk_size=1, batch_size=chunk)

            def fwd():
                with torch.no_grad():
                    mem(x)

            def fwd_bwd():
                xi = x.clone().requires_grad_(True)
                y, _ = mem(xi)
                (y * w).sum().backward()
                mem.zero_grad(set_to_none=True)

            rows.append({
                "semantics": semantics,
                "chunk": chunk,
                "fwd": a.seq / median_seconds(fwd, a.warmup, a.repeats),
                "fwd_bwd": a.seq / median_seconds(fwd_bwd, a.warmup, a.repeats),
            })
    print(json.dumps({
        "peer": "titans-pytorch",
        "version": importlib.metadata.version("titans-pytorch"),
        "torch": torch.__version__,
        "threads": a.threads,
        "rows": rows,
    }))


if __name__ == "__main__":
    main()
