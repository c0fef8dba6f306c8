"""experiments/ci.yaml end to end on a generated dataset in horse2zebra's real layout, and data.subset:
a seeded, recorded subset of each split, in the run identity and the tables' footnotes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.cli import main
from bench.core.config import SubsetConfig
from bench.data.subset import chosen, prepare_subset
from bench.harness.experiment_file import load_experiment
from bench.harness.plan import plan_experiment

REPO = Path(__file__).resolve().parent.parent


def horse2zebra_like(root: Path, train: int = 24, test: int = 25) -> Path:
    """JPEGs of 256 x 256 named as the CycleGAN archive's (n02381460_*.jpg horses, n02391049_*.jpg zebras)."""
    rng = np.random.default_rng(0)
    for split, count in (("trainA", train), ("trainB", train), ("testA", test), ("testB", test)):
        folder = root / "horse2zebra" / split
        folder.mkdir(parents=True)
        prefix = "n02381460" if split.endswith("A") else "n02391049"
        for i in range(count):
            base = np.array([150, 110, 70] if split.endswith("A") else [200, 200, 200], dtype=np.float64)
            image = base + rng.normal(0, 25, (256, 256, 3))
            if split.endswith("B"):
                image[:, (np.arange(256) // 16) % 2 == 0] *= 0.2   # stripes
            Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(folder / f"{prefix}_{1000 + 7 * i}.jpg", quality=90)
    return root / "horse2zebra"


def test_subset_is_seeded_recorded_and_made_again_when_the_data_change(tmp_path):
    dataset = horse2zebra_like(tmp_path / "data", train=12, test=9)
    files = sorted((dataset / "testA").iterdir())
    picked = chosen(files, 4, 0, "testA")
    assert picked == chosen(list(reversed(files)), 4, 0, "testA") and len(picked) == 4   # the listing order does not matter
    assert picked != chosen(files, 4, 1, "testA") and picked != chosen(files, 4, 0, "testB")
    subset = SubsetConfig(train=5, test=4, seed=0)
    folder = prepare_subset(dataset, subset)
    assert sorted(p.name for p in (folder / "testA").iterdir()) == [p.name for p in picked]
    assert len(list((folder / "trainB").iterdir())) == 5 and not any(p.is_symlink() for p in folder.rglob("*"))
    record = json.loads((folder / "subset.json").read_text())
    assert record["of"] == {"trainA": 12, "trainB": 12, "testA": 9, "testB": 9} and record["subset"]["test"] == 4
    stamp = (folder / "subset.json").stat().st_mtime_ns
    assert prepare_subset(dataset, subset) == folder and (folder / "subset.json").stat().st_mtime_ns == stamp   # reused
    (dataset / "testA" / picked[0].name).unlink()                    # the dataset changed: the copy is made again
    again = prepare_subset(dataset, subset)
    assert picked[0].name not in {p.name for p in (again / "testA").iterdir()} and len(list((again / "testA").iterdir())) == 4


@pytest.mark.slow   # about 30 s: kept out of the default suite for its 10-minute budget; .ci/run runs it
def test_the_ci_experiment_runs_end_to_end_on_data_in_the_real_layout(tmp_path, capsys):
    root = tmp_path / "data"
    horse2zebra_like(root)
    overrides = ["--set", f"data.root={root}", "--set", f"output_dir={tmp_path / 'runs'}", "--set",
                 f"results_dir={tmp_path / 'results'}", "--set", "eval.inception_weights=random", "--set",
                 "train.iterations=2", "--set", "launcher.jobs=1"]
    experiment = load_experiment(REPO / "experiments" / "ci.yaml",
                                 [o for o in overrides if o != "--set" and not o.startswith("launcher")])
    plan = plan_experiment(experiment)
    assert {t.identity["data"]["subset"]["test"] for t in plan.trainings} == {20}
    other = plan_experiment(load_experiment(REPO / "experiments" / "ci.yaml",
                                            [o for o in overrides if o != "--set" and not o.startswith("launcher")] +
                                            ["data.subset.seed=1"]))
    assert {t.run_id for t in plan.trainings}.isdisjoint({t.run_id for t in other.trainings})
    assert main([str(REPO / "experiments" / "ci.yaml"), "--no-progress", *overrides]) == 0
    results = next((tmp_path / "results").iterdir())
    table = (results / "table3.md").read_text()
    assert "horse2zebra: scored on a seeded subset (data.subset): 20 of the paper's 120 source and 20 of its 140" in table
    for label in ("U-GAT-IT", "CycleGAN", "Identity (no translation)", "Dummy colour matching"):
        assert f"| {label}" in table
    scored = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("result.json")]
    assert len(scored) == 4 and all(len(list((Path(r["directions"]["a2b"]["translations"])).glob("*.png"))) == 20 for r in scored)
    capsys.readouterr()
    assert main([str(REPO / "experiments" / "ci.yaml"), "--no-progress", *overrides]) == 0   # a rerun does nothing
    assert "train 0->" not in capsys.readouterr().out


def test_the_example_workflow_runs_the_ci_experiment_and_keeps_its_tables():
    import yaml

    workflow = yaml.safe_load((REPO / "examples" / "ci" / "real-data.yml").read_text())
    steps = workflow["jobs"]["real-data"]["steps"]
    commands = " ".join(step.get("run", "") for step in steps)
    assert "python run_bench.py experiments/ci.yaml" in commands and '--download "$DATASET"' in commands
    cached = [step for step in steps if step.get("uses", "").startswith("actions/cache")]
    assert any("DATASET_SHA256" in step["with"]["key"] for step in cached)
    uploaded = next(step for step in steps if step.get("uses", "").startswith("actions/upload-artifact"))
    assert uploaded["with"]["path"] == "results/ci/" and load_experiment(REPO / "experiments" / "ci.yaml").name == "ci"
