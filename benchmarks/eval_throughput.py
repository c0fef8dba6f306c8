"""Evaluation speed: this project's scorer against torch_fidelity.calculate_metrics, in one run.

    python benchmarks/eval_throughput.py [--real DIR --fake DIR] [--images 100 --size 256] [--weights PATH|random]

On the same folder pair and the same Inception weights it measures:
  - feature extraction, images per second: this project (eval.features) and torch-fidelity
    (its Inception on the same uint8 images, through its own folder loader);
  - total scoring time for the pair (weights load, features of both folders, KID and FID):
    `python -m eval score`'s path against `torch_fidelity.calculate_metrics(kid=True, fid=True)`,
    both computing torch-fidelity's subset KID over the whole sets;
  - re-scoring time when the features are cached (the goal: under a second for test-set sizes).
Without --real/--fake it writes a synthetic pair of --images images of --size px (the paper's test
sets have 100 to 751 images at 256 px). Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.data.synthetic import SyntheticSpec, generate_image  # noqa: E402
from eval.score import Scorer, ScoreSettings  # noqa: E402


def write_pair(root: Path, images: int, size: int) -> tuple[Path, Path]:
    spec = SyntheticSpec(image_size=size)
    folders = []
    for domain in ("B", "A"):   # real: target domain (polygons); fake: stands in for translations (discs)
        folder = root / f"domain{domain}"
        folder.mkdir(parents=True)
        for index in range(images):
            Image.fromarray(generate_image(spec, domain, "test", index)).save(folder / f"{index:04d}.png")
        folders.append(folder)
    return folders[0], folders[1]


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real")
    parser.add_argument("--fake")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--weights", default=None, help="Inception weights; default: the official file if present, else 'random'")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="eval-throughput-"))
    if args.real and args.fake:
        real, fake = Path(args.real), Path(args.fake)
    else:
        real, fake = write_pair(work / "images", args.images, args.size)
    weights = args.weights
    if weights is None:
        from eval.inception import WeightsError, resolve_weights
        try:
            weights = str(resolve_weights(None, allow_download=False).path)
        except WeightsError:
            weights = "random"

    # This project, cold cache: weights load + features of both folders + KID (subsets over all images) + FID.
    n_real = len(list(real.glob("*.png"))) + len(list(real.glob("*.jpg")))
    n_fake = len(list(fake.glob("*.png"))) + len(list(fake.glob("*.jpg")))
    subset = min(n_real, n_fake)
    settings = ScoreSettings("subsets", subsets=100, subset_size=subset, with_fid=True)
    scorer = Scorer(weights, args.device, cache_dir=work / "cache", batch_size=args.batch_size, progress=False)
    ours, ours_seconds = timed(lambda: scorer.score(real, fake, settings=settings))

    # Feature extraction alone, network already loaded (this project).
    features_only = Scorer(weights, args.device, cache_dir=None, batch_size=args.batch_size, progress=False)
    _ = features_only.extractor.network  # load the network before timing
    _, ours_features_seconds = timed(lambda: (features_only.features(real), features_only.features(fake)))

    # torch-fidelity, same images, weights and KID settings.
    import torch_fidelity
    cuda = scorer.device.type == "cuda"
    theirs, theirs_seconds = timed(lambda: torch_fidelity.calculate_metrics(
        input1=str(fake), input2=str(real), kid=True, fid=True, kid_subsets=100, kid_subset_size=subset,
        feature_extractor_weights_path=str(scorer.weights.path), cuda=cuda, batch_size=args.batch_size,
        verbose=False, cache=False))
    # torch-fidelity's feature extraction alone (its extractor and folder loader).
    from torch_fidelity.utils import create_feature_extractor, extract_featuresdict_from_input_id
    extractor = create_feature_extractor("inception-v3-compat", ["2048"], cuda=cuda,
                                         feature_extractor_weights_path=str(scorer.weights.path), verbose=False)
    _, theirs_features_seconds = timed(lambda: [extract_featuresdict_from_input_id(
        i, extractor, input1=str(fake), input2=str(real), cuda=cuda, batch_size=args.batch_size, verbose=False)
        for i in (1, 2)])

    # Re-scoring from the cache, as a second `python -m eval score` would (a fresh scorer).
    rescorer = Scorer(weights, args.device, cache_dir=work / "cache", batch_size=args.batch_size, progress=False)
    cached, cached_seconds = timed(lambda: rescorer.score(real, fake, settings=settings))
    paper, paper_cached_seconds = timed(lambda: rescorer.score(real, fake, settings=ScoreSettings("paper")))

    total_images = n_real + n_fake
    rows = [
        ("feature extraction, images/s", f"{total_images / ours_features_seconds:.1f}", f"{total_images / theirs_features_seconds:.1f}",
         f"{theirs_features_seconds / ours_features_seconds:.2f}x"),
        ("total scoring time, s (KID+FID)", f"{ours_seconds:.2f}", f"{theirs_seconds:.2f}", f"{theirs_seconds / ours_seconds:.2f}x"),
        ("re-scoring from cache, s", f"{cached_seconds:.3f}", "-", f"{theirs_seconds / cached_seconds:.0f}x"),
        ("re-scoring, paper protocol, s", f"{paper_cached_seconds:.3f}", "-", ""),
    ]
    print(f"device {scorer.device}, torch threads {torch.get_num_threads()}, {n_real} real + {n_fake} fake images, "
          f"weights {'official' if scorer.weights.official else 'NON-OFFICIAL (random stand-in)'}")
    print(f"{'':34s} {'this project':>14s} {'torch-fidelity':>15s} {'speed-up':>9s}")
    for name, ours_value, theirs_value, ratio in rows:
        print(f"{name:34s} {ours_value:>14s} {theirs_value:>15s} {ratio:>9s}")
    kid_difference = abs(ours["kid"] - theirs["kernel_inception_distance_mean"]) / max(abs(theirs["kernel_inception_distance_mean"]), 1e-12)
    print(f"KID agreement with torch-fidelity: relative difference {kid_difference:.2e}; "
          f"FID {ours['fid']:.3f} vs {theirs['frechet_inception_distance']:.3f}")
    print(json.dumps({
        "benchmark": "eval_throughput", "device": str(scorer.device), "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "real_images": n_real, "fake_images": n_fake,
        "official_weights": scorer.weights.official,
        "ours_features_images_per_s": total_images / ours_features_seconds,
        "torch_fidelity_features_images_per_s": total_images / theirs_features_seconds,
        "ours_total_s": ours_seconds, "torch_fidelity_total_s": theirs_seconds,
        "speedup_total": theirs_seconds / ours_seconds, "cached_rescore_s": cached_seconds,
        "cached_rescore_paper_protocol_s": paper_cached_seconds, "kid_relative_difference": kid_difference,
        "cache_hits": cached["features_from_cache"],
    }))


if __name__ == "__main__":
    main()
