"""Peak memory of loading a TensorFlow U-GAT-IT checkpoint shaped like the authors' released one (full model,
width 64, 256 px, Adam slots and discriminators included), against the generators' own size.

    python benchmarks/tf_checkpoint_memory.py [--keep DIR]

Needs the `tf-oracle` extra (TensorFlow writes the checkpoint, with random values, in a process of its own;
about 7 GB on disk). The load runs in a fresh process, `load_released("ugatit", checkpoint=...)`, and reports
the growth of its peak resident memory (ru_maxrss) over the same process after its imports. The target:
no more than the generators' tensors plus one tensor (the largest, the full MLP's first kernel).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WRITE = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from tf_ugatit_graph import build_checkpoint
prefix, _ = build_checkpoint(Path({out!r}), ch=64, img_size=256, light=False)
print(prefix)
"""

LOAD = """
import json, resource, time
import torch
from bench.core.released import load_released
import bench.core.methods, ugatit.released   # every import done before the baseline
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
start = time.perf_counter()
method = load_released("ugatit", checkpoint={prefix!r})
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
generators = sum(p.numel() * p.element_size() for name in ("genA2B", "genB2A") for p in method.networks[name].parameters())
largest = max(p.numel() * p.element_size() for name in ("genA2B", "genB2A") for p in method.networks[name].parameters())
out = method.translate(torch.zeros(1, 3, 256, 256), "a2b")
print(json.dumps({{"base": base, "peak": peak, "generators": generators, "largest": largest, "seconds": seconds,
                  "translate_ok": bool(torch.isfinite(out).all())}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", help="write (or reuse) the checkpoint in this folder instead of a temporary one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(args.keep or temporary)
        existing = sorted(folder.glob("*/UGATIT.model-*.index"))
        if existing:
            prefix = str(existing[0].with_suffix(""))
        else:
            start = time.perf_counter()
            written = subprocess.run([sys.executable, "-c", WRITE.format(tests=str(REPO / "tests"), out=str(folder))],
                                     capture_output=True, text=True, check=True)
            prefix = written.stdout.strip().splitlines()[-1]
            print(f"wrote the synthetic checkpoint in {time.perf_counter() - start:.0f} s")
        files = sorted(Path(prefix).parent.glob(Path(prefix).name + ".*"))
        on_disk = sum(path.stat().st_size for path in files if not path.name.endswith(".meta"))
        loaded = subprocess.run([sys.executable, "-c", LOAD.format(prefix=prefix)], capture_output=True, text=True,
                                check=True, cwd=REPO)
        result = json.loads(loaded.stdout.strip().splitlines()[-1])
    gib = 2 ** 30
    growth = result["peak"] - result["base"]
    print(f"checkpoint on disk (index + data):        {on_disk / gib:6.2f} GiB")
    print(f"generators' tensors (both):                {result['generators'] / gib:6.2f} GiB")
    print(f"largest tensor (MLP linear_0 kernel):      {result['largest'] / gib:6.2f} GiB")
    print(f"peak resident memory growth while loading: {growth / gib:6.2f} GiB  (load took {result['seconds']:.1f} s)")
    print(f"growth / generators:                       {growth / result['generators']:6.2f}")
    print(f"growth / (generators + largest tensor):    {growth / (result['generators'] + result['largest']):6.2f}"
          f"   target <= 1.00; translation finite: {result['translate_ok']}")


if __name__ == "__main__":
    main()
