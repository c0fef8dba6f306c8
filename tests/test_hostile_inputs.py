"""Hostile or broken inputs: YAML bombs and typos, zip bombs and damaged archives, images that
would load wrong, and entry points that must end in one clear line, never a traceback."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.cli import main
from bench.core.schema import ConfigError
from bench.data.datasets import ArchiveSource, DatasetInfo
from bench.data.download import ArchiveTooLargeError, DownloadError, install_dataset, safe_extract
from bench.harness.experiment_file import load_experiment
from safeio.images import BadImageError, load_rgb

REPO = Path(__file__).resolve().parent.parent
MINIMAL = """
name: x
datasets: [{name: shapes}]
methods: [{name: dummy}]
"""


# ----------------------------------------------------------------------------------------------
# YAML.


def test_an_alias_bomb_is_refused_within_a_memory_limit(write_yaml):
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]" for i in range(8)]
    path = write_yaml("bomb.yaml", MINIMAL + "description: {}\n".format("{" + ", ".join(levels) + "}"))
    # 10^9 values once expanded. Run in a child process limited to 1 GiB of address space.
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        sys.path.insert(0, {str(REPO)!r})
        from bench.core.schema import ConfigError
        from bench.harness.experiment_file import load_experiment
        try:
            load_experiment({str(path)!r})
        except ConfigError as error:
            print(error)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "expands to more than 100,000 values" in result.stdout


@pytest.mark.parametrize("text, message", [
    (MINIMAL + "train: {lr: .inf}\n", "train.lr: must be a finite number, got inf"),
    (MINIMAL + "train: {lr: .nan}\n", "train.lr: must be a finite number, got nan"),
    (MINIMAL + "train: {iterations: 5}\ntrain: {iterations: 6}\n", "line 6: key 'train' is written twice in one mapping (first on line 5)"),
    (MINIMAL + "train: {image_size: 100000}\n", "train.image_size: must be between 16 and 4096"),
    (MINIMAL + "train: {batch_size: 1000000000}\n", "train.batch_size: must be at most 1024"),
    (MINIMAL + "eval: {batch_size: 1000000000}\n", "eval.batch_size: must be between 1 and 1,000,000"),
    (MINIMAL + "description: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    (MINIMAL + "description: " + "[" * 60 + "]" * 60 + "\n", "nested more than 40 levels deep"),
])
def test_bad_yaml_values_are_refused(write_yaml, text, message):
    with pytest.raises(ConfigError) as caught:
        load_experiment(write_yaml("bad.yaml", text))
    assert message in str(caught.value) and "bad.yaml" in str(caught.value)


def test_merge_keys_are_not_taken_for_duplicates(write_yaml):
    path = write_yaml("merge.yaml", MINIMAL.replace("methods: [{name: dummy}]", textwrap.dedent("""
        methods:
          - {name: ugatit, options: &tiny {light: true, width: 8}}
          - {name: ugatit, options: {<<: *tiny, width: 4, norm: in}}
        """)) + "train: {image_size: 32}\n")
    assert [m.options.width for m in load_experiment(path).methods] == [8, 4]


def test_a_non_utf8_file_is_refused_by_name(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes((MINIMAL + "description: caf\xe9\n").encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.yaml: not UTF-8 text .*save the file as UTF-8"):
        load_experiment(path)


def test_an_empty_set_value_is_refused_not_read_as_null(write_yaml):
    path = write_yaml("x.yaml", MINIMAL)
    with pytest.raises(ConfigError, match=r"--set train.iterations=: empty value; write train.iterations=null"):
        load_experiment(path, ["train.iterations="])
    assert load_experiment(path, ["train.iterations=null"]).train.iterations is None


def test_a_dataset_with_an_empty_split_is_not_called_present(tiny_dataset, write_yaml, tmp_path, capsys):
    for image in (tiny_dataset / "testB").iterdir():
        image.unlink()
    path = write_yaml("x.yaml", f"""
        name: x
        datasets: [{{name: tiny}}]
        methods: [{{name: dummy}}]
        data: {{root: {tmp_path / 'data'}}}
        """)
    assert main([str(path), "--dry-run"]) == 2
    output = capsys.readouterr().out
    assert "tiny: present" not in output and "testB (empty: no image files)" in output


# ----------------------------------------------------------------------------------------------
# Archives.


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in entries.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, shade, shade)).save(buffer, format="PNG")
    return buffer.getvalue()


def dataset_entries(prefix: str = "d/") -> dict[str, bytes]:
    return {f"{prefix}{split}/{i}.png": png(i * 40) for split in ("trainA", "trainB", "testA", "testB") for i in range(2)}


INFO = DatasetInfo(name="d", domain_a="a", domain_b="b", sources=(ArchiveSource("http://127.0.0.1:9/unused.zip"),),
                   train_counts=(2, 2), test_counts=(2, 2))


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_a_zip_bomb_is_refused_before_anything_is_written(tmp_path):
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(zip_of({**dataset_entries(), "d/trainA/huge.png": b"\0" * (100 << 20)}))
    assert archive.stat().st_size < 1 << 20    # 100 MiB of zeros in well under 1 MiB
    root = tmp_path / "data"
    with pytest.raises(ArchiveTooLargeError, match=r"would unpack to 100 MiB, more than the 64 MiB.*--max-unpacked-gb"):
        install_dataset(INFO, root, archive=archive, log=lambda _: None)
    assert leftovers(root) == []


def test_sizes_are_counted_as_written_when_headers_lie(tmp_path, monkeypatch):
    import bench.data.download
    monkeypatch.setattr(bench.data.download, "_refuse_if_too_large", lambda *args: None)   # headers that claim little
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(zip_of({"d/trainA/huge.png": b"\0" * (8 << 20)}))
    with pytest.raises(ArchiveTooLargeError, match="unpacked more than 1 MiB"):
        safe_extract(archive, tmp_path / "out", max_bytes=1 << 20)
    assert sum(p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file()) <= 1 << 20


def test_the_limit_can_be_raised_and_free_space_is_checked(tmp_path, monkeypatch):
    archive = tmp_path / "big.zip"
    archive.write_bytes(zip_of({**dataset_entries(), "d/trainA/big.png": b"\0" * (70 << 20)}))
    report = install_dataset(INFO, tmp_path / "data", archive=archive, max_unpacked_bytes=1 << 30, log=lambda _: None)
    assert report.counts["trainA"] == 3
    import shutil
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1 << 40, 1 << 40, 10 << 20))
    with pytest.raises(DownloadError, match=r"unpacking needs 70 MiB .* has 10 MiB free"):
        install_dataset(INFO, tmp_path / "other", archive=archive, max_unpacked_bytes=1 << 30, log=lambda _: None)


def test_damaged_archives_end_in_a_clear_error(tmp_path):
    good = zip_of(dataset_entries())
    directory = good.rfind(b"PK\x01\x02")
    damaged_directory = tmp_path / "directory.zip"
    damaged_directory.write_bytes(good[:directory] + b"\x13" * 40 + good[directory + 40:])
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w:gz") as bundle:
        for name, data in dataset_entries().items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            bundle.addfile(member, io.BytesIO(data))
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(tar_buffer.getvalue()[: len(tar_buffer.getvalue()) * 2 // 3])
    for archive in (damaged_directory, truncated):
        root = tmp_path / f"data-{archive.stem}"
        with pytest.raises(DownloadError, match=f"{archive}: (the archive is damaged|not a zip or tar archive)"):
            install_dataset(INFO, root, archive=archive, log=lambda _: None)
        assert leftovers(root) == []


def test_an_install_removes_what_a_killed_install_left(tmp_path):
    import socket
    root = tmp_path / "data"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    stale = root / f".d-installing.{child.pid}@{socket.gethostname()}.0badf00d"
    (stale / "extracted").mkdir(parents=True)
    archive = tmp_path / "d.zip"
    archive.write_bytes(zip_of(dataset_entries()))
    install_dataset(INFO, root, archive=archive, log=lambda _: None)
    assert leftovers(root) == ["d", "datasets.lock.json"]


# ----------------------------------------------------------------------------------------------
# Images.


def test_high_bit_depth_and_float_images_load_by_their_real_range(tmp_path):
    ramp16 = np.linspace(0, 65535, 64 * 64).reshape(64, 64)
    big_endian = tmp_path / "be16.tif"
    Image.frombuffer("I;16B", (64, 64), ramp16.astype(">u2").tobytes(), "raw", "I;16B", 0, 1).save(big_endian)
    little_endian = tmp_path / "le16.tif"
    Image.fromarray(ramp16.astype("<u2")).save(little_endian)
    unit_float = tmp_path / "float.tif"
    Image.fromarray((ramp16 / 65535).astype(np.float32)).save(unit_float)
    expected = np.round(ramp16 / 65535 * 255)
    for path in (big_endian, little_endian, unit_float):
        loaded = np.asarray(load_rgb(path)).astype(np.float64)
        assert np.abs(loaded[..., 0] - expected).max() <= 1, path.name
        assert loaded.std() > 60   # a full ramp, neither saturated nor black
    out_of_range = tmp_path / "hdr.tif"
    Image.fromarray(np.full((8, 8), 1000.0, dtype=np.float32)).save(out_of_range)
    with pytest.raises(BadImageError, match=r"hdr.tif: cannot be read.*values in \[1000, 1000\].*convert it to 8-bit"):
        load_rgb(out_of_range)


def test_exif_orientation_is_ignored_as_torchvision_and_the_authors_loaders_do(tmp_path):
    from torchvision.datasets.folder import pil_loader
    array = np.zeros((8, 16, 3), dtype=np.uint8)
    array[:, :8] = 255                                     # left half white
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6                                       # "rotate 90 degrees to display"
    Image.fromarray(array).save(path, exif=exif, quality=100)
    ours = np.asarray(load_rgb(path))
    assert ours.shape == (8, 16, 3) and np.array_equal(ours, np.asarray(pil_loader(str(path))))


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse names that are not UTF-8")
def test_a_file_name_that_is_not_utf8_is_scored(tiny_dataset, tmp_path):
    from eval.score import Scorer, ScoreSettings
    fake = tmp_path / "fake"
    fake.mkdir()
    for index, source in enumerate(sorted((tiny_dataset / "testB").iterdir())):
        name = os.fsdecode(b"caf\xe9-" + str(index).encode() + b".png")
        (fake / name).write_bytes(source.read_bytes())
    scorer = Scorer("random", "cpu", cache_dir=tmp_path / "cache", progress=False)
    settings = ScoreSettings(max_block_size=3, with_fid=False)
    record = scorer.score(tiny_dataset / "testB", fake, settings=settings)
    same_images = scorer.score(tiny_dataset / "testB", tiny_dataset / "testB", settings=settings)
    assert record["counts"]["fake"] == 6 and record["kid_x100"] == same_images["kid_x100"]


# ----------------------------------------------------------------------------------------------
# Entry points end in one clear line.


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    return lines[0]


def test_run_bench_bad_yaml_and_missing_file(write_yaml, tmp_path, capsys):
    path = write_yaml("bad.yaml", "name: [unclosed\n")
    assert main([str(path)]) == 2
    assert one_error_line(capsys).startswith(f"error: {path}: not valid YAML")
    assert main([str(tmp_path / "nope.yaml")]) == 2
    assert "experiment file not found; experiment files in" in one_error_line(capsys)


def test_a_foreign_checkpoint_says_which_method_and_options_it_holds(tiny_dataset, tmp_path, capsys):
    from bench.core.config import TrainConfig
    from bench.core.methods import create_method
    from bench.core.train import checkpoint_path, train
    from bench.data.pipeline import StreamSettings, UnpairedTrainingSet
    from ugatit.translate import main as translate_main

    config = TrainConfig(iterations=1, image_size=32, num_workers=0)
    dataset = UnpairedTrainingSet(tiny_dataset, StreamSettings(image_size=32, load_size=36))
    identity = {"method": "cyclegan", "options": {"width": 2, "n_blocks": 1}, "dataset": "tiny", "seed": 0}
    train(create_method("cyclegan", train=config, width=2, n_blocks=1), dataset, tmp_path / "run", config, identity,
          torch.device("cpu"), progress=False)
    assert translate_main([str(checkpoint_path(tmp_path / "run")), str(tiny_dataset / "testA"), str(tmp_path / "o")]) == 2
    line = one_error_line(capsys)
    assert "a checkpoint of method 'cyclegan' with options" in line and '"n_blocks": 1' in line and "not of U-GAT-IT" in line


@pytest.mark.parametrize("tool", ["ugatit.compat inspect", "ugatit.translate", "eval score --weights"])
def test_a_file_that_is_not_a_checkpoint_or_weights(tool, tiny_dataset, tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 100)
    if tool == "ugatit.compat inspect":
        from ugatit.compat import main as tool_main
        code = tool_main(["inspect", str(junk)])
    elif tool == "ugatit.translate":
        from ugatit.translate import main as tool_main
        code = tool_main([str(junk), str(tiny_dataset / "testA"), str(tmp_path / "out")])
    else:
        from eval.__main__ import main as tool_main
        code = tool_main(["score", "--real", str(tiny_dataset / "testA"), "--fake", str(tiny_dataset / "testB"),
                          "--weights", str(junk), "--no-progress"])
    assert code == 2
    assert f"{junk}: not a readable" in one_error_line(capsys)
