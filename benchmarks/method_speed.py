"""Seconds per training iteration of each method at its reference size, measured in one run.

    python benchmarks/method_speed.py [--size 128] [--iterations 6] [--methods ugatit,cyclegan,unit,munit,drit]
                                      [--device auto] [--set munit.width=32 ...]

Each method runs in its own process, one after the other (never side by side: they would share the
cores), with its reference options (U-GAT-IT full, width 64), batch size 1 (DRIT: its reference 2;
CartoonGAN: 8, in its adversarial phase, with a random VGG19: the same work), on random images. One warm-up cycle is left out of the timing; DRIT's iterations alternate two
content-discriminator updates and one full update, so its count is rounded up to a multiple of three
and the figure is their average. Prints a table, the ratio of each method to U-GAT-IT when it was
measured, the hours one million iterations would take, and, last, one JSON line.

With --record, the figures are also written to benchmarks/measured_speed.csv (one row per method,
image size, batch size, options and device; a new measurement replaces the old row): the table from
which `run_bench.py --dry-run` estimates the GPU-hours (or CPU-hours) of an experiment.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCH = {"drit": 2, "cartoongan": 8}   # the reference batches (DRIT: one encoded + one real image per domain)
CYCLE = {"drit": 3}          # iterations per repeating pattern of work (DRIT's d_iter)
DEFAULTS = {"cartoongan": {"vgg_weights": "random"}}   # the same work as real VGG19 weights, with no download


class ConstantStream:
    """Stands for CartoonGAN's edge-smoothed stream: the same image at every index."""

    def __init__(self, image):
        self.image = image

    def __getitem__(self, index: int):
        return self.image


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def measure(name: str, size: int, iterations: int, device: str, options: dict) -> dict:
    import torch

    from bench.core.config import TrainConfig
    from bench.core.methods import create_method
    from safeio.environment import resolve_device

    torch_device = resolve_device(device)
    torch.manual_seed(0)
    batch = BATCH.get(name, 1)
    cycle = CYCLE.get(name, 1)
    iterations = -(-iterations // cycle) * cycle
    options = {**DEFAULTS.get(name, {}), **options}
    method = create_method(name, train=TrainConfig(image_size=size, iterations=10**6, batch_size=batch),
                           device=torch_device, **options)
    images = [torch.rand(batch, 3, size, size, device=torch_device) * 2 - 1 for _ in range(2)]
    if name == "cartoongan":   # time its adversarial phase, on an edge-smoothed stream of random images
        method.init_steps = 0
        method.edge_smoothed = ConstantStream(images[1][0].cpu())

    def run(steps: range) -> None:
        for step in steps:
            method.set_step(step)
            losses = method.train_step(*images)
        float(next(iter(losses.values())))   # wait for the device
        if torch_device.type == "cuda":
            torch.cuda.synchronize()

    run(range(cycle))                        # warm-up
    started = time.perf_counter()
    run(range(cycle, cycle + iterations))
    seconds = (time.perf_counter() - started) / iterations
    parameters = sum(p.numel() for p in method.networks.parameters())
    from bench.harness.estimate import options_key

    identity_options = type(method).identity_options(method.options, method.train_config)
    device_name = torch.cuda.get_device_name(torch_device) if torch_device.type == "cuda" else cpu_name()
    return {"method": name, "options_key": options_key(identity_options), "device_name": device_name, "seconds_per_iteration": seconds, "iterations_timed": iterations, "batch_size": batch,
            "image_size": size, "parameters": parameters, "device": str(torch_device),
            "threads": torch.get_num_threads(), "options": options}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--methods", default="ugatit,cyclegan,unit,munit,drit")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.OPTION=VALUE",
                        help="an option of one method, e.g. munit.width=32 (YAML value)")
    parser.add_argument("--record", action="store_true", help="write the figures to benchmarks/measured_speed.csv")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import yaml

    options: dict[str, dict] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        method, _, option = key.partition(".")
        options.setdefault(method, {})[option] = yaml.safe_load(value)
    if args.worker:
        print(json.dumps(measure(args.worker, args.size, args.iterations, args.device, options.get(args.worker, {}))))
        return

    results = []
    for name in args.methods.split(","):
        command = [sys.executable, __file__, "--worker", name, "--size", str(args.size), "--iterations", str(args.iterations),
                   "--device", args.device, *[f"--set={item}" for item in args.set]]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            sys.exit(f"{name} failed:\n{done.stderr}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{name}: {results[-1]['seconds_per_iteration']:.3f} s/it", file=sys.stderr, flush=True)

    base = next((r["seconds_per_iteration"] for r in results if r["method"] == "ugatit"), None)
    print(f"\n{args.size} px, device {results[0]['device']}, {results[0]['threads']} threads, batch 1 (DRIT 2, CartoonGAN 8)")
    print(f"{'method':<10} {'params':>12} {'s/it':>8} {'x U-GAT-IT':>11} {'h per 1M it':>12}")
    for r in results:
        ratio = f"{r['seconds_per_iteration'] / base:.2f}" if base else "-"
        hours = r["seconds_per_iteration"] * 1e6 / 3600
        print(f"{r['method']:<10} {r['parameters']:>12,} {r['seconds_per_iteration']:>8.3f} {ratio:>11} {hours:>12,.0f}")
    if args.record:
        from bench.harness.estimate import SPEED_TABLE, record_measurements

        record_measurements(results)
        print(f"recorded in {SPEED_TABLE}")
    print(json.dumps({"size": args.size, "results": results}))


if __name__ == "__main__":
    main()
