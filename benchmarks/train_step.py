"""Seconds per U-GAT-IT training iteration and peak memory: this project against the official code.

    python benchmarks/train_step.py [--configs 128-w32-light,256-w64-light,256-w64-full] [--iterations 3]

For each configuration it times, on the same weights and the same inputs, in one run:
  official   ugatit/official_reference.py: a faithful re-statement of the official iteration (the
             generators run six times, the discriminator loss back-propagates through them, plain
             Adam, a per-module rho clip, the losses read back every step as the official code prints them);
  ours       this project's step (ugatit/method.py) with the official_pytorch preset, loaded with the
             same weights: shared translations, batched generator and discriminator calls, fused Adam,
             no discriminator weight gradients in the generator update, one foreach rho clip;
  ours-fast  on CUDA only: ours with bf16 autocast and channels_last (and torch.compile with --compile).
Each (configuration, implementation) runs in its own process, so peak memory is its own: on CUDA
torch.cuda.max_memory_allocated, on the CPU the process's peak resident memory (the interpreter and
libraries included). Prints a table and, last, one JSON line. With CUDA it also estimates the GPU
hours of the U-GAT-IT trainings of Tables 1 and 3 (12 models x 1M iterations) from the measured rate.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONFIGS = {   # name: (image size, width, light)
    "128-w32-light": (128, 32, True),
    "256-w64-light": (256, 64, True),
    "256-w64-full": (256, 64, False),
}
PAPER_ITERATIONS = 1_000_000
UGATIT_MODELS_IN_TABLES = 12   # Table 1: 8 variants on selfie2anime; Table 3: U-GAT-IT on 4 more datasets


def worker(config: str, implementation: str, iterations: int, warmup: int, compile_networks: bool) -> dict:
    """One measurement, in a fresh process."""
    from bench.core.config import TrainConfig
    from bench.core.methods import create_method
    from ugatit.compat import official_to_project_states
    from ugatit.official_reference import official_networks, official_optimizers, official_train_step

    size, width, light = CONFIGS[config]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    nets = official_networks(ngf=width, n_blocks=4, img_size=size, light=light)
    generator = torch.Generator().manual_seed(1)
    batches = [(torch.rand(1, 3, size, size, generator=generator) * 2 - 1).to(device) for _ in range(2)]

    if implementation == "official":
        nets = {name: network.to(device) for name, network in nets.items()}
        g_optim, d_optim = official_optimizers(nets)

        def step():
            official_train_step(nets, g_optim, d_optim, *batches)   # reads the losses back, as the official code prints them
    else:
        fast = implementation == "ours-fast"
        method = create_method("ugatit", train=TrainConfig(image_size=size, iterations=PAPER_ITERATIONS), device=device,
                               width=width, n_res=4, light=light, preset="official_pytorch",
                               amp=fast, channels_last=fast, compile=fast and compile_networks)
        method.load_networks(official_to_project_states({name: n.state_dict() for name, n in nets.items()}))
        del nets

        def step():
            method.train_step(*batches)

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(iterations):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / iterations
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"config": config, "implementation": implementation, "device": str(device),
            "seconds_per_iteration": seconds, "peak_memory_gib": peak / 2**30,
            "memory_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process peak RSS"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per measurement")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--compile", action="store_true", help="CUDA: also torch.compile the fast variant")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on the CPU (default: torch's)")
    parser.add_argument("--worker", nargs=2, metavar=("CONFIG", "IMPLEMENTATION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.iterations, args.warmup, args.compile)))
        return

    implementations = ["official", "ours"] + (["ours-fast"] if torch.cuda.is_available() else [])
    results = []
    for config in args.configs.split(","):
        for implementation in implementations:
            command = [sys.executable, __file__, "--worker", config, implementation, "--iterations", str(args.iterations),
                       "--warmup", str(args.warmup)] + (["--compile"] if args.compile else []) \
                      + (["--threads", str(args.threads)] if args.threads else [])
            completed = subprocess.run(command, capture_output=True, text=True)
            if completed.returncode != 0:
                print(f"{config} {implementation}: failed\n{completed.stderr[-2000:]}", file=sys.stderr)
                continue
            result = json.loads(completed.stdout.strip().splitlines()[-1])
            results.append(result)
            print(f"  measured {config:14s} {implementation:10s} {result['seconds_per_iteration']:8.3f} s/it  "
                  f"{result['peak_memory_gib']:6.2f} GiB", flush=True)

    device = results[0]["device"] if results else "?"
    print(f"\nU-GAT-IT training iteration, batch 1, 4 + 4 residual blocks, device {device}, torch threads {torch.get_num_threads()}")
    print(f"{'config':16s} {'official s/it':>14s} {'ours s/it':>10s} {'speed-up':>9s} {'fast s/it':>10s} {'speed-up':>9s} "
          f"{'official GiB':>13s} {'ours GiB':>9s}")
    summary = {}
    for config in args.configs.split(","):
        by = {r["implementation"]: r for r in results if r["config"] == config}
        if "official" not in by or "ours" not in by:
            continue
        official, ours = by["official"], by["ours"]
        fast = by.get("ours-fast")
        speedup = official["seconds_per_iteration"] / ours["seconds_per_iteration"]
        fast_speedup = official["seconds_per_iteration"] / fast["seconds_per_iteration"] if fast else None
        fast_time = f"{fast['seconds_per_iteration']:10.3f}" if fast else f"{'-':>10s}"
        fast_ratio = f"{fast_speedup:8.2f}x" if fast else f"{'-':>9s}"
        print(f"{config:16s} {official['seconds_per_iteration']:14.3f} {ours['seconds_per_iteration']:10.3f} {speedup:8.2f}x "
              f"{fast_time} {fast_ratio} {official['peak_memory_gib']:13.2f} {ours['peak_memory_gib']:9.2f}")
        summary[config] = {"official_s": official["seconds_per_iteration"], "ours_s": ours["seconds_per_iteration"],
                           "speedup": speedup, "fast_s": fast["seconds_per_iteration"] if fast else None,
                           "fast_speedup": fast_speedup, "official_peak_gib": official["peak_memory_gib"],
                           "ours_peak_gib": ours["peak_memory_gib"], "memory_kind": ours["memory_kind"]}
    gpu_hours = None
    if device.startswith("cuda") and "256-w64-full" in summary:
        best = summary["256-w64-full"]["fast_s"] or summary["256-w64-full"]["ours_s"]
        gpu_hours = best * PAPER_ITERATIONS * UGATIT_MODELS_IN_TABLES / 3600
        official_hours = summary["256-w64-full"]["official_s"] * PAPER_ITERATIONS * UGATIT_MODELS_IN_TABLES / 3600
        print(f"GPU hours for the {UGATIT_MODELS_IN_TABLES} U-GAT-IT trainings of Tables 1 and 3 (full, 256 px, 1M iterations): "
              f"{gpu_hours:.0f} (official code: {official_hours:.0f})")
    else:
        print("No CUDA device: GPU speed and the GPU-hour estimate are not measured in this run.")
    print(json.dumps({"benchmark": "train_step", "device": device, "threads": torch.get_num_threads(),
                      "iterations": args.iterations, "results": summary, "gpu_hours_tables_1_and_3": gpu_hours}))


if __name__ == "__main__":
    main()
