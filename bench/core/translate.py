"""Translate a folder of test images with any method: one PNG per input, same file stem.
(The command line over this, for any checkpoint or released file: bench/cli/translate.py.)

Every method's outputs are saved with the same convention, clamp((x + 1) / 2, 0, 1) rounded to
8 bits, and no per-image min-max stretch (UNIT's test script stretches each output, which changes
KID; see docs/baselines.md). PNG is lossless, so scores never depend on JPEG quality.
The output folder is written under a temporary name of its own process and renamed when complete,
so a folder with the final name always holds every translation, and two processes translating into
the same folder do not disturb each other (the last complete folder wins). The manifest lists the
input and output file names, so that a removed or added file is noticed without decoding any image
(`completeness_problem`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from bench.data.pipeline import SortedImageFolder
from safeio.files import owned_temporary_name, remove_stale_temporaries, replace_directory
from safeio.images import IMAGE_EXTENSIONS

MANIFEST = "translations.json"


def to_uint8_images(batch: torch.Tensor) -> np.ndarray:
    """N x 3 x H x W in [-1, 1] -> N x H x W x 3 uint8, by clamp((x + 1) / 2) and rounding."""
    scaled = ((batch.detach().float().clamp(-1.0, 1.0) + 1.0) * 127.5).round()
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def output_names(test_set: SortedImageFolder, samples_per_input: int = 1) -> list[str]:
    """One PNG name per translation: the input's stem, with "-k<sample>" when there are several per input."""
    names = [Path(path).stem + ".png" for path in test_set.files]
    if len(set(names)) != len(names):
        seen, clashes = set(), []
        for path, name in zip(test_set.files, names):
            if name in seen:
                clashes.append(path.name)
            seen.add(name)
        raise ValueError(f"{test_set.folder}: files share a name apart from the extension ({clashes[:3]}); "
                         "their translations would overwrite each other; rename them")
    if samples_per_input > 1:
        names = [f"{name[:-4]}-k{k}.png" for name in names for k in range(samples_per_input)]
    return names


@torch.no_grad()
def translate_images(translate: Callable[[torch.Tensor], torch.Tensor | tuple[torch.Tensor, torch.Tensor]],
                     input_dir: Path, output_dir: Path, image_size: int, device: torch.device, batch_size: int = 8,
                     on_bad_image: str = "fail", extra_manifest: dict | None = None, progress: bool = True,
                     companion_dir_name: str | None = None, samples_per_input: int = 1, pipeline: str = "paper") -> Path:
    """Translate every image of `input_dir` with `translate` (a batch in [-1, 1] -> a batch in [-1, 1]).

    With `companion_dir_name`, `translate` returns (translations, companions): a second picture per
    input in [0, 1] (an attention overlay, say), saved under the same name in
    `output_dir/<companion_dir_name>/`. Scoring reads only the files directly in `output_dir`.
    With `samples_per_input` K, `translate` returns K translations per input, image-major (input i's are
    rows i*K .. i*K + K - 1), saved as <stem>-k<sample>.png; batches come in the folder's sorted order.
    `pipeline` names how inputs are resized (bench.data.pipeline.PIPELINES: the method's own, or the paper's).
    """
    if companion_dir_name and samples_per_input != 1:
        raise ValueError("companion pictures need one translation per input")
    output_dir = Path(output_dir)
    test_set = SortedImageFolder(input_dir, image_size, on_bad_image, pipeline)
    names = output_names(test_set, samples_per_input)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output_dir.parent, f".{output_dir.name}.partial")
    partial = output_dir.with_name(owned_temporary_name(f".{output_dir.name}.partial"))
    partial.mkdir()
    if companion_dir_name:
        (partial / companion_dir_name).mkdir()
    written = 0
    bar = tqdm(total=len(names), desc=f"translate {Path(input_dir).name}", unit="img", disable=not progress, leave=False)
    for images, _ in test_set.batches(batch_size):
        result = translate(images.to(device))
        outputs, companions = result if companion_dir_name else (result, None)
        if outputs.shape[0] != images.shape[0] * samples_per_input:
            raise RuntimeError(f"the translator returned {outputs.shape[0]} images for {images.shape[0]} inputs "
                               f"({samples_per_input} per input expected)")
        arrays = to_uint8_images(outputs)
        extra = to_uint8_images(companions * 2 - 1) if companions is not None else [None] * len(arrays)
        for array, companion in zip(arrays, extra):
            Image.fromarray(array).save(partial / names[written])
            if companion is not None:
                Image.fromarray(companion).save(partial / companion_dir_name / names[written])
            written += 1
        bar.update(len(arrays))
    bar.close()
    manifest = {
        "input_dir": str(Path(input_dir)),
        "count": written,
        "inputs": [p.name for p in test_set.files],
        "outputs": names,
        "skipped_inputs": [str(p) for p in test_set.skipped],
        "image_size": image_size,
        **(extra_manifest or {}),
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    replace_directory(partial, output_dir)
    return output_dir


def read_manifest(output_dir: Path) -> dict | None:
    try:
        manifest = json.loads((Path(output_dir) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def completeness_problem(output_dir: Path, input_dir: Path) -> str | None:
    """Why `output_dir` is not a complete translation of `input_dir` now, or None when it is.

    Checks names only (no image is decoded): the manifest's inputs are the images of `input_dir`
    (those it skipped as unreadable aside), and the manifest's outputs are exactly the images in
    `output_dir`.
    """
    manifest = read_manifest(output_dir)
    if manifest is None or "outputs" not in manifest:
        return "no manifest"
    inputs_now = {p.name for p in _listed(input_dir)}
    inputs_then = set(manifest["inputs"]) | {Path(p).name for p in manifest["skipped_inputs"]}
    if inputs_now != inputs_then:
        return (f"the inputs changed since it was translated ({len(inputs_now - inputs_then)} new, "
                f"{len(inputs_then - inputs_now)} gone)")
    outputs_now = {p.name for p in _listed(output_dir)}
    expected = set(manifest["outputs"])
    if outputs_now != expected:
        missing, extra = sorted(expected - outputs_now), sorted(outputs_now - expected)
        parts = ([f"{len(missing)} translation(s) missing (e.g. {missing[0]})"] if missing else []) + \
                ([f"{len(extra)} unexpected file(s) (e.g. {extra[0]})"] if extra else [])
        return ", ".join(parts)
    return None


def _listed(folder: Path) -> list[Path]:
    folder = Path(folder)
    return [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS] if folder.is_dir() else []


def translate_with_method(method, direction: str, input_dir: Path, output_dir: Path, image_size: int,
                          device: torch.device, on_bad_image: str = "fail", progress: bool = True,
                          extra_manifest: dict | None = None, attention: bool = True, batch_size: int = 8,
                          exemplar_dir: Path | None = None) -> Path:
    """`translate_images` with a Method. A method that shows attention (U-GAT-IT, AGGAN) also gets its heatmaps
    drawn over each input in output_dir/attention/. A multimodal method (MUNIT, DRIT) translates with
    the codes its test settings ask for (bench.core.multimodal), which the manifest records; the exemplar
    style takes its codes from the images of `exemplar_dir` (the target domain's test images)."""
    from bench.core.multimodal import MultimodalMethod, evaluation_translator
    from bench.core.visual import overlay

    pipeline = method.resolved_pipeline()

    if isinstance(method, MultimodalMethod):
        settings = method.test_settings(method.options)
        exemplars = SortedImageFolder(exemplar_dir, image_size, on_bad_image, pipeline) if exemplar_dir and settings["style"] == "exemplar" else None
        if settings["style"] == "exemplar" and exemplars is None:
            raise ValueError(f"{method.name}: test_style 'exemplar' needs the target domain's test images "
                             "(--exemplars DIR with bench.cli.translate)")
        load = (lambda indices: torch.stack([exemplars[i][0] for i in indices])) if exemplars is not None else None
        run = evaluation_translator(method, direction, settings, load, len(exemplars) if exemplars is not None else 0)
        return translate_images(run, input_dir, output_dir, image_size, device, batch_size=batch_size,
                                on_bad_image=on_bad_image, progress=progress, samples_per_input=settings["samples"],
                                extra_manifest={**(extra_manifest or {}), "test_settings": settings}, pipeline=pipeline)

    with_attention = getattr(method, "translate_with_attention", None) if attention else None

    def run(images: torch.Tensor):
        if with_attention is None:
            return method.translate(images, direction)
        translations, heatmap = with_attention(images, direction)
        return translations, overlay(images, heatmap, scale=not getattr(method, "attention_is_probability", False))

    return translate_images(run, input_dir, output_dir, image_size, device, batch_size=batch_size,
                            on_bad_image=on_bad_image, progress=progress,
                            companion_dir_name="attention" if with_attention is not None else None,
                            extra_manifest=extra_manifest, pipeline=pipeline)
