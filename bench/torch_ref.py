#!/usr/bin/env python3
"""The PyTorch side of dmis-bench: the same training step (EDM loss, backward, gradient-norm
clipping, AdamW, EMA) or diffusion-classifier forward, on the same preset, batch and thread count,
timed the same way (median over --steps after --warmup). Prints one JSON line.

Uses the model of tests/fixtures/torch_unet.py. Run with Debian's python3-torch.
"""
import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
import torch_unet  # noqa: E402


def proc_mb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return float(line.split()[1]) / 1024
    return -1.0


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["train-step", "classifier"])
    ap.add_argument("--preset", default="unet-s")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--classes", type=int, default=0)
    # classifier: samples per forward (default --batch: K forwards of B; 0: one forward of B*K).
    # PyTorch 1.13's CPU forward of the whole B*K = 640 took 7x as long per image as forwards of
    # 64 on this machine (docs/performance.md), so the fair reference is the chunked one.
    ap.add_argument("--chunk", type=int, default=-1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = torch_unet.PRESETS[a.preset]
    B, C, R = a.batch, cfg["in_channels"], cfg["resolution"]
    rss0 = proc_mb("VmRSS:")
    net = torch_unet.build(a.preset)
    times = []
    if a.mode == "train-step":
        ema = [p.detach().clone() for p in net.parameters()]
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, foreach=True)
        x0 = torch.rand(B, C, R, R) * 2 - 1
        labels = torch.randint(0, cfg["classes"] + 1, (B,))

        def step():
            sigma = torch.exp(torch.randn(B) * 1.2 - 1.2)
            noise = torch.randn(B, C, R, R)
            opt.zero_grad(set_to_none=True)
            loss, _, _, _ = torch_unet.edm_loss(net, x0, sigma, noise, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            with torch.no_grad():
                torch._foreach_mul_(ema, 0.999)
                torch._foreach_add_(ema, list(net.parameters()), alpha=0.001)
    else:
        K = a.classes or cfg["classes"]
        x = torch.rand(B * K, C, R, R) * 2 - 1
        labels = torch.arange(B * K) % K
        sigma = torch.full((B * K,), 0.3)

        chunk = B if a.chunk < 0 else (a.chunk or B * K)

        def step():
            with torch.no_grad():
                c_in = 1 / torch.sqrt(sigma ** 2 + 0.25)
                for i in range(0, B * K, chunk):
                    s = slice(i, i + chunk)
                    net(c_in[s, None, None, None] * x[s], torch.log(sigma[s]) / 4, labels[s])
    reset_peak()
    for _ in range(a.warmup):
        step()
    for _ in range(a.steps):
        t = time.perf_counter()
        step()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    med = times[len(times) // 2]
    peak = proc_mb("VmHWM:")
    print(json.dumps(dict(bench=a.mode, preset=a.preset, batch=B, img_per_s=B / (med / 1e3),
                          step_ms=med, threads=a.threads, torch_version=str(torch.__version__),
                          peak_rss_mb=peak, step_mem_mb=peak - rss0,
                          **({"chunk": chunk} if a.mode == "classifier" else {}))))


if __name__ == "__main__":
    main()
