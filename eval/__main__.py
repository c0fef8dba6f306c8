"""python -m eval score --real DIR --fake DIR [--source DIR] [--protocol paper|subsets|mean]
python -m eval compare --real DIR --fake [LABEL=]DIR --fake [LABEL=]DIR [...] [--label NAME ...] [--resamples 2000] [--seed 0]
python -m eval study build|serve|table ...   (the user study of Table 2: eval/study/)

`score` scores any folder of translated images against real images, prints `KID x100 = a +- b` and
writes a JSON record (protocol, counts, Inception weights' sha256, versions); see eval/score.py.
`compare` tests, for every pair of translation folders of the same source images, whether their KIDs
differ: the difference x100, its 95% paired-bootstrap interval and a paired permutation p-value,
Holm-corrected over the pairs; see eval/compare.py. Both reuse cached features.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from eval.compare import DEFAULT_RESAMPLES, compare_all
from eval.score import PROTOCOLS, Scorer, ScoreSettings, format_score
from safeio.environment import package_versions
from safeio.exits import EXIT_INTERRUPTED, EXIT_OK, report_error
from safeio.files import CACHE_ENV, DiskFullError, InputError, atomic_write_json


def _scoring_options(parser: argparse.ArgumentParser) -> None:
    """The options `score` and `compare` share: where features come from."""
    parser.add_argument("--real", required=True, help="real images of the target domain (e.g. testB for a2b)")
    parser.add_argument("--source", help="real images of the source domain (needed by --protocol mean)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="paper",
                        help="paper: TF-GAN blocks of 10 (default); subsets: torch-fidelity's; mean: average vs target and source")
    parser.add_argument("--weights", help="Inception weights file, or 'random' for a random stand-in (not comparable); "
                                          "default: $UGATIT_BENCH_INCEPTION, else torch-fidelity's download")
    parser.add_argument("--cache-dir", help=f"feature cache folder (default: ${CACHE_ENV} or ~/.cache/ugatit-bench)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write cached features")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--max-block-size", type=int, default=10, help="paper/mean protocols: block size")
    parser.add_argument("--skip-bad-images", action="store_true", help="leave out unreadable files instead of stopping")
    parser.add_argument("--json", help="where to write the record (default: a file in the current folder; never inside "
                                       "a dataset unless given here)")
    parser.add_argument("--no-progress", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval", description="Score translated images with KID (and FID).")
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser("score", help="score a folder of translations against real images",
                                description="Score a folder of translations: KID x100 +- std (and FID).")
    _scoring_options(score)
    score.add_argument("--fake", required=True, help="translated images")
    score.add_argument("--no-fid", action="store_true", help="skip FID")
    score.add_argument("--subsets", type=int, default=100, help="subsets protocol: number of subsets")
    score.add_argument("--subset-size", type=int, default=1000, help="subsets protocol: images per subset")
    score.add_argument("--seed", type=int, default=2020, help="subsets protocol: numpy seed")
    compare = commands.add_parser("compare", help="test whether translation folders' KIDs differ",
                                  description="For every pair of translation folders of the same source images: the KID "
                                              "difference x100, a 95% paired-bootstrap interval and the bootstrap's p-value "
                                              "of equal KIDs, Holm-corrected over the pairs.")
    _scoring_options(compare)
    compare.add_argument("--fake", required=True, action="append", metavar="[LABEL=]DIR",
                         help="translations of the source images (repeat, at least twice); LABEL names it in the output")
    compare.add_argument("--label", action="append", metavar="NAME",
                         help="the name of the --fake folder of the same position (repeat); default: its run folder's "
                              "name for a run's translations/<direction>, else the folder's name")
    compare.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES, help="bootstrap draws")
    compare.add_argument("--seed", type=int, default=0, help="seed of the resampling")
    return parser


def _scorer(args) -> Scorer:
    return Scorer(args.weights, args.device, None if args.no_cache else (args.cache_dir or "default"), args.batch_size,
                  "skip" if args.skip_bad_images else "fail", progress=not args.no_progress, weights_setting="--weights")


def folder_label(folder: Path) -> list[str]:
    """The names a translation folder may go by, shortest first: a run's `<run>/translations/<direction>`
    by its run folder (then run/direction), any other folder by its name (then parent/name, ...)."""
    parts = Path(folder).resolve().parts
    if len(parts) >= 3 and parts[-2] == "translations":
        return [parts[-3], f"{parts[-3]}/{parts[-1]}", *("/".join(parts[-k:]) for k in range(4, len(parts) + 1))]
    return ["/".join(parts[-k:]) for k in range(1, len(parts) + 1)]


def _labelled(entries: list[str], labels: list[str] | None = None) -> dict[str, Path]:
    """Each --fake folder under its label: --label in order, else LABEL= before the folder, else the
    shortest name (folder_label) that no other input shares."""
    labels = list(labels or [])
    if len(labels) > len(entries):
        raise ValueError(f"{len(labels)} --label for {len(entries)} --fake folders: give at most one label per folder")
    parsed = []
    for index, entry in enumerate(entries):
        label, _, folder = entry.rpartition("=") if "=" in entry and not Path(entry).exists() else ("", "", entry)
        parsed.append((labels[index] if index < len(labels) else label, Path(folder)))
    names = {folder: folder_label(folder) for _, folder in parsed}
    folders: dict[str, Path] = {}
    for label, folder in parsed:
        if not label:
            others = [names[other] for given, other in parsed if other != folder and not given]
            label = next((name for name in names[folder] if not any(name in other for other in others)), names[folder][-1])
        if label in folders:
            raise ValueError(f"two --fake folders are labelled {label!r} ({folders[label]} and {folder}): give --label for each")
        folders[label] = folder
    return folders


def run_compare(args) -> tuple[dict, Path]:
    folders = _labelled(args.fake, args.label)
    if len(folders) < 2:
        raise ValueError("give at least two --fake folders to compare")
    scorer = _scorer(args)
    real = scorer.features(args.real)
    source = scorer.features(args.source) if args.source else None
    fakes = {label: scorer.features(folder) for label, folder in folders.items()}
    reference_names = next(iter(fakes.values())).names
    for label, features in fakes.items():
        if features.names != reference_names:
            missing = sorted(set(reference_names) - set(features.names))[:3]
            extra = sorted(set(features.names) - set(reference_names))[:3]
            raise ValueError(f"{folders[label]}: not translations of the same source images as {next(iter(folders.values()))} "
                             f"(missing {missing}, extra {extra}); a paired comparison needs one translation per source image")
    pairs = compare_all(real.features, {k: v.features for k, v in fakes.items()},
                        source.features if source is not None else None, args.protocol, args.max_block_size,
                        args.resamples, args.seed, scorer.device)
    record = {
        "test": "paired bootstrap over the test images and the real images: 95% interval and two-sided p of equal KIDs, Holm over the pairs",
        "protocol": args.protocol, "max_block_size": args.max_block_size, "resamples": args.resamples, "seed": args.seed,
        "counts": {"real": len(real), "fake": len(reference_names), "source": len(source) if source is not None else None},
        "folders": {"real": str(args.real), "source": args.source, "fake": {k: str(v) for k, v in folders.items()}},
        "weights": scorer.weights.record(), "versions": package_versions(), "device": str(scorer.device),
        "pairs": [pair.record() for pair in pairs],
    }
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-vs-".join(folders))[:80]
    output = Path(args.json) if args.json else Path.cwd() / f"compare-{name}-{args.protocol}.json"
    atomic_write_json(output, record)
    return record, output


def format_comparison(record: dict) -> str:
    from tabulate import tabulate

    rows = [[p["first"], p["second"], f"{p['kid_first_x100']:.2f}", f"{p['kid_second_x100']:.2f}",
             f"{p['difference_x100']:+.2f}", f"[{p['ci_low_x100']:+.2f}, {p['ci_high_x100']:+.2f}]",
             f"{p['p_value']:.4f}", f"{p['p_holm']:.4f}" + (" *" if p["p_holm"] < 0.05 else "")]
            for p in record["pairs"]]
    text = tabulate(rows, headers=["first", "second", "KID x100", "KID x100", "difference", "95% interval", "p", "p (Holm)"],
                    disable_numparse=True)   # keep 0.10 and +0.00 as written
    text += (f"\n{record['test']}; {record['counts']['fake']} test images, {record['resamples']} resamples, seed "
             f"{record['seed']}, protocol {record['protocol']}. * : significant at 5% after Holm's correction.")
    if not record["weights"]["official"]:
        text += f"\nNOT COMPARABLE WITH THE PAPER: {record['weights']['label']}"
    return text


def default_record_path(fake: Path, metric: str) -> Path:
    """score-<parent>-<fake>-<metric>.json in the current folder: a record never lands inside a dataset
    or an output folder unless --json puts it there."""
    fake = Path(fake).resolve()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{fake.parent.name}-{fake.name}")
    return Path.cwd() / f"score-{name}-{metric}.json"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["study"]:   # the user study has its own commands (eval/study/cli.py)
        from eval.study.cli import main as study_main

        return study_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "compare":
            record, output = run_compare(args)
            text = format_comparison(record)
        else:
            settings = ScoreSettings(args.protocol, args.max_block_size, args.subsets, args.subset_size, args.seed,
                                     with_fid=not args.no_fid)
            record = _scorer(args).score(args.real, args.fake, args.source, settings)
            output = Path(args.json) if args.json else default_record_path(Path(args.fake), record["metric"])
            atomic_write_json(output, record)
            text = format_score(record)
    except (InputError, ValueError, DiskFullError) as error:   # one line, exit 2
        return report_error(error, flag="--skip-bad-images")
    except KeyboardInterrupt:
        print("\ninterrupted: no record was written; features already extracted are cached", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(text)
    print(f"record: {output}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
