"""The experiment's report page, `results/<experiment>/index.html`, written with the tables (and by
--tables-only): the tables (with the paper's values, significance and footnotes), per task a paged
gallery of every test image across every model (source, attention maps, translations, each model's KID),
the training curves and each run's state and settings.

It opens from disk with no server and no network: relative links only, and every image it shows is a
thumbnail written beside it under `page/` (JPEG, at most THUMB px, rewritten only when its bytes
change). The page is a Jinja2 template (bench/harness/page_template.py); the same records give the same
bytes, so --tables-only rewrites it identically.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
from pathlib import Path
from typing import Any

from jinja2 import Environment

from bench.core.train import cpu_threads_label
from bench.harness.page_template import PAGE
from bench.harness.plan import RESULT_FILE, Plan, slug
from safeio.files import atomic_write_bytes, read_json
from safeio.images import list_images

THUMB = 160          # px, the longer side of a thumbnail
PER_PAGE = 20        # test images per gallery page
PAGE_FILE = "index.html"


def markdown_blocks(text: str) -> dict[str, Any]:
    """One of eval/tables.py's markdown tables as the page shows it: the title, the lines before the
    tables, each table's header and rows (the model's name first) and the lines after (footnotes)."""
    lines = text.splitlines()
    title = lines[0].lstrip("# ").strip() if lines and lines[0].startswith("#") else ""
    before, blocks, after = [], [], []
    for line in lines[1:]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if set(line.replace("|", "").strip()) <= {"-"}:
                continue
            if not blocks or blocks[-1]["closed"]:
                blocks.append({"header": cells, "rows": [], "closed": False})
            else:
                model = re.sub(r"\s*[⁰¹²³⁴⁵⁶⁷⁸⁹,]+$", "", cells[0])
                blocks[-1]["rows"].append({"model": model, "cells": [inline(cell) for cell in cells]})
        else:
            if blocks:
                blocks[-1]["closed"] = True
            if line.strip():
                (after if blocks else before).append(inline(line))
    return {"title": title, "before": before, "blocks": blocks, "after": after}


def inline(text: str) -> str:
    """Markdown's **bold** and `code` as HTML, everything else escaped."""
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def thumbnail(source: Path, target: Path) -> bool:
    """Write a JPEG thumbnail of `source` at `target` (atomically; untouched when its bytes would be the same)."""
    from PIL import Image

    try:
        with Image.open(source) as image:
            image = image.convert("RGB")
            image.thumbnail((THUMB, THUMB), Image.Resampling.BICUBIC)
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=88)
    except OSError:
        return False
    data = buffer.getvalue()
    if not (target.is_file() and target.read_bytes() == data):
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)
    return True


def gallery(task: str, source_dir: Path, columns: list[tuple[str, Path]], attention: list[tuple[str, Path]],
            kid_text: dict[tuple[str, str], str], out_dir: Path) -> dict[str, Any]:
    names = [path.name for path in list_images(source_dir)] if source_dir.is_dir() else []
    shown = [("source", source_dir, "")] + [(f"{label}: attention", folder, "") for label, folder in attention] + \
        [(label, folder, kid_text.get((label, task), "")) for label, folder in columns]
    rows = []
    for index, name in enumerate(names):
        images = []
        for number, (label, folder, _) in enumerate(shown):
            found = folder / name if number == 0 else next((folder / f"{Path(name).stem}{ext}" for ext in (".png", ".jpg")
                                                             if (folder / f"{Path(name).stem}{ext}").is_file()), None)
            target = out_dir / "page" / task / f"{number:02d}-{slug(label)}" / f"{Path(name).stem}.jpg"
            images.append(target.relative_to(out_dir).as_posix() if found is not None and thumbnail(found, target) else None)
        rows.append({"name": name, "page": index // PER_PAGE, "images": images})
    return {"task": task, "count": len(names), "per_page": PER_PAGE, "pages": max(1, -(-len(names) // PER_PAGE)),
            "columns": [{"label": label, "kid": kid} for label, _, kid in shown], "rows": rows}


def run_state(training) -> str:
    record = read_json(training.run_dir / RESULT_FILE)
    if record:
        total = training.train.iterations if training.train is not None else None
        scored = ", ".join(sorted(record.get("directions", {})))
        threads = cpu_threads_label(record.get("trained_with"))
        return (f"trained {record['steps']:,}" + (f" of {total:,}" if total else "") + " iterations"
                + (f" with {threads} torch thread(s) on the CPU" if threads else "") + f"; scored: {scored}")
    if (training.run_dir / "checkpoints").is_dir():
        return "training (a checkpoint, not scored yet)"
    return "not started"


def write_page(plan: Plan, tables: list[Path], tasks: list[tuple[str, Path, list, list]],
               kid_text: dict[tuple[str, str], str], command: str) -> Path:
    """results/<experiment>/index.html and its thumbnails, from the written tables, the run records and, per
    task, (task, source images, [(model, translations)], [(model, attention maps)]) as the figures show them,
    with each model's KID caption (model, task) -> text."""
    experiment, out_dir = plan.experiment, plan.results_dir
    page_tables = [{"name": path.stem, **markdown_blocks(path.read_text())} for path in tables if path.suffix == ".md"]
    galleries = [gallery(task, source, columns, attention, kid_text, out_dir) for task, source, columns, attention in tasks]
    curves = [{"title": path.stem, "src": path.relative_to(out_dir).as_posix()}
              for path in sorted((out_dir / "figures" / "curves").glob("*.png"))]
    runs = [{"variant": t.variant, "dataset": t.dataset.name, "seed": t.seed, "state": run_state(t),
             "folder": os.path.relpath(t.run_dir, out_dir), "folder_name": t.run_dir.name,
             "settings": json.dumps(t.identity, indent=1, sort_keys=True)} for t in plan.trainings]
    environment = Environment(autoescape=True, keep_trailing_newline=True)
    text = environment.from_string(PAGE).render(
        experiment=experiment.name, description=experiment.description, command=command, tables=page_tables,
        galleries=galleries, curves=curves, runs=runs, thumb=THUMB)
    path = out_dir / PAGE_FILE
    atomic_write_bytes(path, text.encode())
    return path
