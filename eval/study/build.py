"""Build a preference study (the paper's Table 2) from an experiment's translations, or any folders.

For each task, a seeded choice of source test images; for each, one trial: the source image and the
translation of every candidate method (the first seed's run, as in the tables). Catch trials detect
careless participants: their candidates are untouched source images and one real image of the target
domain, which is the only sensible answer. Where the paper showed example target images
(photo2portrait, photo2vangogh; paper, Sec. 3.3.3), the trial pages show a few, drawn from the target
domain's training images. Every image is checked when the study is built: a file that is not a
regular, decodable image inside its folder (a symbolic link leaving it, a device) is left out with a
line in the study's problems, and the hash of each image's bytes is recorded for the server to check.
"""

from __future__ import annotations

import json
import random
import stat
from dataclasses import dataclass
from pathlib import Path

from bench.data.datasets import dataset_info
from bench.harness.experiment_file import load_experiment
from bench.harness.plan import RESULT_FILE, plan_experiment
from eval.study.store import CATCH_SOURCE, CATCH_TARGET, StudyError, StudyStore, new_id
from safeio.files import read_json, sha256_file
from safeio.images import DataError, list_images, load_rgb

FORMAT = "ugatit-bench-study/1"
PAPER_METHODS = ("U-GAT-IT", "CycleGAN", "UNIT", "MUNIT", "DRIT")   # Table 2's five
EXAMPLE_TASKS = ("photo2portrait", "photo2vangogh")   # the paper showed example target images for these
EXAMPLES_PER_TASK = 4
# What participants are told the target domain is (the paper: "animation, dog, and zebra").
DOMAIN_NAMES = {"anime": "animation", "vangogh": "Van Gogh painting", "portrait": "portrait", "selfie": "selfie photo",
                "photo": "photo", "zebra": "zebra", "horse": "horse", "dog": "dog", "cat": "cat"}


@dataclass(frozen=True)
class TaskSource:
    """One task of the study: where its source images, target images and candidates' translations are."""
    task: str
    target_domain: str
    source_dir: Path
    target_test_dir: Path
    target_train_dir: Path
    candidates: dict[str, Path]     # method label -> folder of translations (one per source image, same stem)


def _domain_name(domain: str) -> str:
    return DOMAIN_NAMES.get(domain, domain)


def tasks_from_experiment(experiment_path: str | Path, methods: list[str] | None = None,
                          overrides: tuple[str, ...] = ()) -> list[TaskSource]:
    """The tasks of an experiment and, for each, the translation folders of the chosen methods."""
    experiment = load_experiment(experiment_path, overrides)
    plan = plan_experiment(experiment)
    root = experiment.data.resolved_root()
    first_seed = experiment.train.seeds[0]
    folders: dict[str, dict[str, Path]] = {}   # task -> label -> folder
    directions: dict[str, tuple[str, str]] = {}  # task -> (dataset, direction)
    for training in plan.trainings:
        if training.seed != first_seed:
            continue
        for key, entry in ((read_json(training.run_dir / RESULT_FILE) or {}).get("directions") or {}).items():
            task = entry["task"]
            folders.setdefault(task, {}).setdefault(training.variant, Path(entry["translations"]))
            directions[task] = (training.dataset.name, entry["direction"])
    for item in experiment.external:
        task = dataset_info(item.dataset).task_name(item.direction)
        folders.setdefault(task, {})[item.label] = Path(item.folder)
        directions[task] = (item.dataset, item.direction)
    available = sorted({label for by_label in folders.values() for label in by_label})
    wanted = methods or [label for label in PAPER_METHODS if label in available]
    if not wanted:
        raise StudyError(f"{experiment_path}: none of the paper's methods ({', '.join(PAPER_METHODS)}) has translations; "
                         f"methods with translations: {', '.join(available) or 'none (run the experiment first)'}; "
                         "choose them with --methods")
    unknown = [label for label in wanted if label not in available]
    if unknown:
        raise StudyError(f"{experiment_path}: no translations of {', '.join(unknown)}; methods with translations: "
                         f"{', '.join(available) or 'none (run the experiment first)'}")
    sources = []
    for task in sorted(folders):
        dataset, direction = directions[task]
        present = {label: folders[task][label] for label in wanted if label in folders[task]}
        if len(present) < len(wanted):
            continue   # a task not every candidate ran (CartoonGAN's one direction): not comparable
        info = dataset_info(dataset)
        source_split, target_split = ("A", "B") if direction == "a2b" else ("B", "A")
        target = info.domain_b if direction == "a2b" else info.domain_a
        sources.append(TaskSource(task, _domain_name(target), root / dataset / f"test{source_split}",
                                  root / dataset / f"test{target_split}", root / dataset / f"train{target_split}", present))
    if not sources:
        raise StudyError(f"{experiment_path}: no task has translations of all of {', '.join(wanted)}")
    return sources


def image_problem(path: Path, folder: Path) -> str | None:
    """Why `path` may not be shown in a study, or None: it must be a regular image file that is, after
    following any symbolic link, inside `folder` (no link to /etc/passwd, no device, no FIFO), and decode."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return "a symbolic link that points nowhere"
    if real.parent != folder.resolve():
        return f"a symbolic link to {real}, outside its folder"
    if not stat.S_ISREG(real.stat().st_mode):
        return "not a regular file"
    try:
        load_rgb(real)
    except DataError as error:
        return f"not an image ({getattr(error, 'reason', error)})"
    return None


def _by_stem(folder: Path, problems: list[str]) -> dict[str, Path]:
    """The images of a folder by file stem, leaving out (with a line in `problems`) what may not be shown."""
    if not folder.is_dir():
        raise StudyError(f"{folder}: folder not found")
    images = {}
    for path in list_images(folder):
        problem = image_problem(path, folder)
        if problem is None:
            images[path.stem] = path
        else:
            problems.append(f"{path}: {problem}; left out of the study")
    return images


def build_study(tasks: list[TaskSource], out: Path, per_task: int = 20, seed: int = 0, catch_per_task: int = 2,
                source: str = "") -> StudyStore:
    """Write the study database `out` (refusing to replace one that has votes)."""
    out = Path(out)
    if out.exists():
        existing = StudyStore(out)
        if existing.votes():
            raise StudyError(f"{out} already holds votes; give another --out (a built study is never replaced)")
        existing.close()
        out.unlink()
    rng = random.Random(seed)
    images: dict[str, str] = {}   # path -> image id

    def image(path: Path) -> str:
        key = str(Path(path).resolve())
        if key not in images:
            images[key] = new_id()
        return images[key]

    trials, task_rows, problems = [], [], []
    for task in tasks:
        sources = _by_stem(task.source_dir, problems)
        translations = {label: _by_stem(folder, problems) for label, folder in task.candidates.items()}
        stems = sorted(set(sources).intersection(*translations.values()))
        for label, by_stem in translations.items():
            missing = sorted(set(sources) - set(by_stem))
            if missing:
                problems.append(f"{task.task}: {label} has no translation of {len(missing)} source image(s) in "
                                f"{task.candidates[label]} (e.g. {missing[0]}); they are left out of the study")
        if len(stems) < per_task:
            raise StudyError(f"{task.task}: only {len(stems)} source images have a translation by every candidate; "
                             f"--per-task {per_task} needs more")
        chosen = rng.sample(stems, per_task)
        for stem in chosen:
            trials.append((task.task, "regular", image(sources[stem]),
                           [(label, image(translations[label][stem])) for label in task.candidates]))
        targets = sorted(_by_stem(task.target_test_dir, problems).values())
        distractors = [p for stem, p in sorted(sources.items()) if stem not in chosen]
        count = len(task.candidates)
        for _ in range(catch_per_task):
            if len(distractors) < count or not targets:
                raise StudyError(f"{task.task}: catch trials need {count} source images not used by the study and one "
                                 f"target image; lower --per-task or --catch")
            picks = rng.sample(distractors, count)
            trials.append((task.task, "catch", image(picks[0]),
                           [(CATCH_SOURCE, image(p)) for p in picks[1:]] + [(CATCH_TARGET, image(rng.choice(targets)))]))
        examples = []
        if task.task in EXAMPLE_TASKS:
            folder = task.target_train_dir if task.target_train_dir.is_dir() else task.target_test_dir
            pool = list_images(folder) if folder == task.target_train_dir else targets
            for path in rng.sample(pool, min(EXAMPLES_PER_TASK, len(pool))):   # only the drawn ones are decoded
                problem = image_problem(path, folder)
                if problem is None:
                    examples.append(image(path))
                else:
                    problems.append(f"{path}: {problem}; left out of the study's examples")
        task_rows.append((task.task, task.target_domain, json.dumps(examples)))
    rng.shuffle(trials)

    store = StudyStore(out, create=True)
    with store.transaction() as db:
        for path, image_id in images.items():   # the hash of the bytes checked above: the server serves those or nothing
            db.execute("INSERT INTO images (id, path) VALUES (?, ?)", (image_id, path))
            db.execute("INSERT INTO image_hashes (image, sha256) VALUES (?, ?)", (image_id, sha256_file(Path(path))))
        db.executemany("INSERT INTO tasks (name, target_domain, examples) VALUES (?, ?, ?)", task_rows)
        for position, (task_name, kind, source_image, candidates) in enumerate(trials):
            trial_id = new_id()
            db.execute("INSERT INTO trials (id, position, task, kind, source) VALUES (?, ?, ?, ?, ?)",
                       (trial_id, position, task_name, kind, source_image))
            db.executemany("INSERT INTO candidates (trial, slot, label, image) VALUES (?, ?, ?, ?)",
                           [(trial_id, slot, label, image_id) for slot, (label, image_id) in enumerate(candidates)])
        methods = list(tasks[0].candidates)
        for key, value in {"format": FORMAT, "seed": seed, "per_task": per_task, "catch_per_task": catch_per_task,
                           "methods": methods, "source": source, "problems": problems}.items():
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))
    return store
