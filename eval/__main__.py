"""python -m eval score --real DIR --fake DIR [--source DIR] [--protocol paper|subsets|mean]

Scores any folder of translated images against real images, prints `KID x100 = a +- b` and writes
a JSON record (protocol, counts, Inception weights' sha256, versions). See eval/score.py.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from bench.data import BadImageError, DataError
from bench.files import CACHE_ENV, DiskFullError, atomic_write_json
from eval.inception import WeightsError
from eval.kid import KIDError
from eval.score import PROTOCOLS, Scorer, ScoreSettings, format_score


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval", description="Score translated images with KID (and FID).")
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser("score", help="score a folder of translations against real images",
                                description=__doc__.split("\n\n")[1])
    score.add_argument("--real", required=True, help="real images of the target domain (e.g. testB for a2b)")
    score.add_argument("--fake", required=True, help="translated images")
    score.add_argument("--source", help="real images of the source domain (needed by --protocol mean)")
    score.add_argument("--protocol", choices=PROTOCOLS, default="paper",
                       help="paper: TF-GAN blocks of 10 (default); subsets: torch-fidelity's; mean: average vs target and source")
    score.add_argument("--weights", help="Inception weights file, or 'random' for a random stand-in (not comparable); "
                                         "default: $UGATIT_BENCH_INCEPTION, else torch-fidelity's download")
    score.add_argument("--json", help="where to write the record (default: score-<fake folder>-<metric>.json in the "
                                      "current folder; never inside a dataset unless given here)")
    score.add_argument("--no-fid", action="store_true", help="skip FID")
    score.add_argument("--cache-dir", help=f"feature cache folder (default: ${CACHE_ENV} or ~/.cache/ugatit-bench)")
    score.add_argument("--no-cache", action="store_true", help="neither read nor write cached features")
    score.add_argument("--batch-size", type=int, default=50)
    score.add_argument("--device", default="auto", help="auto, cpu or cuda")
    score.add_argument("--max-block-size", type=int, default=10, help="paper/mean protocols: block size")
    score.add_argument("--subsets", type=int, default=100, help="subsets protocol: number of subsets")
    score.add_argument("--subset-size", type=int, default=1000, help="subsets protocol: images per subset")
    score.add_argument("--seed", type=int, default=2020, help="subsets protocol: numpy seed")
    score.add_argument("--skip-bad-images", action="store_true", help="leave out unreadable files instead of stopping")
    score.add_argument("--no-progress", action="store_true")
    return parser


def default_record_path(fake: Path, metric: str) -> Path:
    """score-<parent>-<fake>-<metric>.json in the current folder: a record never lands inside a dataset
    or an output folder unless --json puts it there."""
    fake = Path(fake).resolve()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{fake.parent.name}-{fake.name}")
    return Path.cwd() / f"score-{name}-{metric}.json"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = ScoreSettings(args.protocol, args.max_block_size, args.subsets, args.subset_size, args.seed,
                                 with_fid=not args.no_fid)
        scorer = Scorer(args.weights, args.device, None if args.no_cache else (args.cache_dir or "default"),
                        args.batch_size, "skip" if args.skip_bad_images else "fail", progress=not args.no_progress,
                        weights_setting="--weights")
        record = scorer.score(args.real, args.fake, args.source, settings)
        output = Path(args.json) if args.json else default_record_path(Path(args.fake), record["metric"])
        atomic_write_json(output, record)
    except BadImageError as error:
        print(f"error: {error.for_flag('--skip-bad-images')}", file=sys.stderr)
        return 2
    except (DataError, KIDError, WeightsError, ValueError, DiskFullError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: no record was written; features already extracted are cached", file=sys.stderr)
        return 130
    print(format_score(record))
    print(f"record: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
