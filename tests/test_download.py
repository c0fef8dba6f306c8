"""The dataset downloader, against a local HTTP server on 127.0.0.1 serving archives built here."""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from bench.cli import main
from bench.data.datasets import ArchiveSource, DatasetInfo
from bench.data.download import DownloadError, UnsafeArchiveError, fetch, install_dataset


def png_bytes(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_zip(counts: dict[str, int], prefix: str = "horse2zebra/", extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for split, count in counts.items():
            for index in range(count):
                bundle.writestr(f"{prefix}{split}/{index:03d}.png", png_bytes(index))
        for name, data in (extra or {}).items():
            bundle.writestr(name, data)
    return buffer.getvalue()


GOOD_COUNTS = {"trainA": 3, "trainB": 5, "testA": 1, "testB": 2}


class ArchiveServer:
    """Serves byte strings by path, honours Range requests unless told not to, and records requests."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.honour_range = True
        self.cut_after: dict[str, int] = {}   # path -> bytes sent before the connection drops
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                range_header = self.headers.get("Range")
                if range_header and server.honour_range:
                    start = int(range_header.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                cut = server.cut_after.pop(self.path, None)
                self.wfile.write(data[start:] if cut is None else data[start:start + cut])
                if cut is not None:
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    archive_server = ArchiveServer()
    yield archive_server
    archive_server.close()


def info_for(server: ArchiveServer, path: str, data: bytes, sha256: str | None = None, **kwargs) -> DatasetInfo:
    server.files[path] = data
    return DatasetInfo(name="horse2zebra", domain_a="horse", domain_b="zebra",
                       sources=(ArchiveSource(server.url(path), sha256=sha256),), **kwargs)


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_good_archive_installs_with_counts(server, tmp_path):
    data = make_zip(GOOD_COUNTS)
    info = info_for(server, "/h2z.zip", data, sha256=hashlib.sha256(data).hexdigest(), train_counts=(3, 5))
    report = install_dataset(info, tmp_path, progress=False, log=lambda _: None)
    assert report.counts == GOOD_COUNTS and not report.swapped and not report.already_present
    assert sorted(p.name for p in (tmp_path / "horse2zebra").iterdir()) == ["dataset.json", "testA", "testB", "trainA", "trainB"]
    assert leftovers(tmp_path / ".downloads") == []   # the archive is removed once installed
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".horse2zebra")] == []
    assert "trainA 3, trainB 5, testA 1, testB 2" in report.summary()
    # A second call finds it and downloads nothing.
    server.requests.clear()
    again = install_dataset(info, tmp_path, progress=False, log=lambda _: None)
    assert again.already_present and server.requests == []


def test_archive_with_domains_the_other_way_round_is_oriented_by_counts(server, tmp_path):
    swapped_counts = {"trainA": 5, "trainB": 3, "testA": 2, "testB": 1}
    info = info_for(server, "/z2h.zip", make_zip(swapped_counts, prefix="deep/er/"), train_counts=(3, 5))
    report = install_dataset(info, tmp_path, progress=False, log=lambda _: None)
    assert report.swapped and report.counts == GOOD_COUNTS


def test_equal_counts_use_what_is_known_of_the_archive(server, tmp_path):
    counts = {"trainA": 2, "trainB": 2, "testA": 1, "testB": 1}
    server.files["/s2a.zip"] = make_zip(counts, extra={"horse2zebra/trainA/marker.png": png_bytes(255)})
    info = DatasetInfo(name="horse2zebra", domain_a="horse", domain_b="zebra", train_counts=(2, 2),
                       sources=(ArchiveSource(server.url("/s2a.zip"), swap_ab=True),))
    report = install_dataset(info, tmp_path, progress=False, log=lambda _: None)
    assert report.swapped and (tmp_path / "horse2zebra" / "trainB" / "marker.png").exists()


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    info = info_for(server, "/h2z.zip", make_zip(GOOD_COUNTS), sha256="0" * 64)
    with pytest.raises(DownloadError, match="checksum mismatch"):
        install_dataset(info, tmp_path, progress=False, log=lambda _: None)
    assert not (tmp_path / "horse2zebra").exists()
    assert leftovers(tmp_path / ".downloads") == []


def test_corrupt_archive_leaves_nothing(server, tmp_path):
    data = make_zip(GOOD_COUNTS)
    info = info_for(server, "/broken.zip", data[: len(data) // 2])
    with pytest.raises(DownloadError, match="not a zip or tar archive|damaged"):
        install_dataset(info, tmp_path, progress=False, log=lambda _: None)
    assert not (tmp_path / "horse2zebra").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name != ".downloads"] == []


def test_archive_escaping_the_folder_is_refused(server, tmp_path):
    root = tmp_path / "data"
    evil = make_zip(GOOD_COUNTS, extra={"horse2zebra/../../evil.png": png_bytes(1)})
    info = info_for(server, "/evil.zip", evil)
    with pytest.raises(UnsafeArchiveError, match=r"\.\./\.\./evil\.png"):
        install_dataset(info, root, progress=False, log=lambda _: None)
    assert not (tmp_path / "evil.png").exists() and not (root / "evil.png").exists()
    assert not (root / "horse2zebra").exists()
    absolute = make_zip(GOOD_COUNTS, extra={"/tmp/absolute.png": png_bytes(1)})
    with pytest.raises(UnsafeArchiveError):
        install_dataset(info_for(server, "/abs.zip", absolute), root, progress=False, log=lambda _: None)


def test_tar_with_a_link_is_refused(server, tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        link = tarfile.TarInfo("horse2zebra/trainA/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        bundle.addfile(link)
    with pytest.raises(UnsafeArchiveError, match="link or special file"):
        install_dataset(info_for(server, "/link.tar.gz", buffer.getvalue()), tmp_path, progress=False, log=lambda _: None)
    assert not (tmp_path / "horse2zebra").exists()


def test_tar_archives_install_too(server, tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for split, count in GOOD_COUNTS.items():
            for index in range(count):
                data = png_bytes(index)
                member = tarfile.TarInfo(f"h2z/{split}/{index}.png")
                member.size = len(data)
                bundle.addfile(member, io.BytesIO(data))
    report = install_dataset(info_for(server, "/h2z.tar.gz", buffer.getvalue()), tmp_path, progress=False, log=lambda _: None)
    assert report.counts == GOOD_COUNTS


def test_partial_download_is_resumed_with_a_range_request(server, tmp_path):
    data = make_zip(GOOD_COUNTS)
    server.files["/big.zip"] = data
    destination = tmp_path / "big.zip"
    half = len(data) // 2
    (tmp_path / "big.zip.part").write_bytes(data[:half])
    fetch(server.url("/big.zip"), destination, hashlib.sha256(data).hexdigest(), progress=False)
    assert destination.read_bytes() == data
    assert server.requests == [("/big.zip", f"bytes={half}-")]
    assert not (tmp_path / "big.zip.part").exists()


def test_server_without_range_support_restarts_cleanly(server, tmp_path):
    data = make_zip(GOOD_COUNTS)
    server.files["/big.zip"] = data
    server.honour_range = False
    (tmp_path / "big.zip.part").write_bytes(b"garbage that must not survive")
    fetch(server.url("/big.zip"), tmp_path / "big.zip", hashlib.sha256(data).hexdigest(), progress=False)
    assert (tmp_path / "big.zip").read_bytes() == data


def test_next_mirror_is_tried_and_all_failures_are_reported(server, tmp_path):
    data = make_zip(GOOD_COUNTS)
    server.files["/mirror2.zip"] = data
    info = DatasetInfo(name="horse2zebra", domain_a="horse", domain_b="zebra",
                       sources=(ArchiveSource(server.url("/gone.zip")), ArchiveSource(server.url("/mirror2.zip"))))
    assert install_dataset(info, tmp_path, progress=False, log=lambda _: None).source.endswith("/mirror2.zip")
    nowhere = DatasetInfo(name="cat2dog", domain_a="cat", domain_b="dog", manual_download="Ask the authors.",
                          sources=(ArchiveSource(server.url("/a.zip")), ArchiveSource(server.url("/b.zip"))))
    with pytest.raises(DownloadError) as caught:
        install_dataset(nowhere, tmp_path, progress=False, log=lambda _: None)
    message = str(caught.value)
    assert "/a.zip: HTTP 404" in message and "/b.zip: HTTP 404" in message and "Ask the authors." in message


def test_force_replaces_only_after_the_new_copy_is_complete(server, tmp_path):
    info = info_for(server, "/h2z.zip", make_zip(GOOD_COUNTS))
    install_dataset(info, tmp_path, progress=False, log=lambda _: None)
    broken = info_for(server, "/broken.zip", b"not an archive")
    with pytest.raises(DownloadError):
        install_dataset(broken, tmp_path, force=True, progress=False, log=lambda _: None)
    assert (tmp_path / "horse2zebra" / "trainB" / "004.png").exists()   # the old copy survived
    bigger = dict(GOOD_COUNTS, trainA=4)
    (tmp_path / "datasets.lock.json").unlink()   # accept another archive, as the checksum refusal says to
    report = install_dataset(info_for(server, "/h2z-v2.zip", make_zip(bigger)), tmp_path, force=True,
                             progress=False, log=lambda _: None)
    assert report.counts["trainA"] == 4


def test_local_archive_and_command_line(tmp_path, capsys):
    archive = tmp_path / "h2z.zip"
    archive.write_bytes(make_zip({"trainA": 1067, "trainB": 2, "testA": 1, "testB": 1}, prefix=""))
    code = main(["--download", "horse2zebra", "--data-root", str(tmp_path / "data"), "--archive", str(archive),
                 "--no-progress"])
    output = capsys.readouterr().out
    assert code == 0 and "horse2zebra: installed" in output and "trainA 1067" in output
    assert "the paper reports (1067, 1334)" in output   # differing counts are reported
    assert archive.exists()                             # a user's own archive is never deleted
    assert main(["--download", "nonesuch", "--data-root", str(tmp_path)]) == 2
    assert "unknown dataset 'nonesuch'" in capsys.readouterr().err


def test_a_download_shorter_than_its_content_length_is_not_taken_for_complete(server, tmp_path):
    data = make_zip(GOOD_COUNTS)
    server.files["/short.zip"] = data
    server.cut_after["/short.zip"] = 100
    destination = tmp_path / "short.zip"
    with pytest.raises(DownloadError, match=f"(got 100 of {len(data)} bytes|connection broke after 100 bytes)"):
        fetch(server.url("/short.zip"), destination, progress=False)
    assert not destination.exists() and (tmp_path / "short.zip.part").stat().st_size == 100
    fetch(server.url("/short.zip"), destination, progress=False)   # the same command again resumes
    assert destination.read_bytes() == data and server.requests[-1][1] == "bytes=100-"


def test_a_zip_entry_that_is_a_symbolic_link_is_refused(server, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for split, count in GOOD_COUNTS.items():
            for index in range(count):
                bundle.writestr(f"horse2zebra/{split}/{index:03d}.png", png_bytes(index))
        link = zipfile.ZipInfo("horse2zebra/trainA/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        bundle.writestr(link, "/etc/passwd")
    info = info_for(server, "/link.zip", buffer.getvalue())
    with pytest.raises(UnsafeArchiveError, match="link.png.*link or special file"):
        install_dataset(info, tmp_path, progress=False, log=lambda _: None)
    assert not (tmp_path / "horse2zebra").exists()


def test_an_archive_without_a_published_checksum_is_pinned_at_first_install(server, tmp_path):
    import json
    first = make_zip(GOOD_COUNTS)
    info = info_for(server, "/pin.zip", first)
    install_dataset(info, tmp_path, progress=False, log=lambda _: None)
    lock = json.loads((tmp_path / "datasets.lock.json").read_text())
    assert lock["horse2zebra"]["sha256"] == hashlib.sha256(first).hexdigest()
    server.files["/pin.zip"] = make_zip({**GOOD_COUNTS, "trainA": 4})   # the archive changed at its source
    with pytest.raises(DownloadError, match="recorded .* when it was first installed"):
        install_dataset(info, tmp_path, force=True, progress=False, log=lambda _: None)
    assert len(list((tmp_path / "horse2zebra" / "trainA").iterdir())) == 3   # the installed copy is kept
