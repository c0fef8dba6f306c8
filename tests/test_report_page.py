"""The experiment's report page (results/<experiment>/index.html): written with the tables, regenerated
byte for byte by --tables-only, self-contained, and checked in a real headless Chromium opened from disk."""

from __future__ import annotations

import hashlib
import re
import shutil
import time

import pytest

from bench.cli import main


@pytest.fixture
def finished(tiny_dataset, write_yaml, tmp_path):
    path = write_yaml("exp.yaml", f"""
        name: page
        description: A <small> experiment for the page's tests.
        datasets: [{{name: tiny}}]
        methods:
          - {{name: ugatit, options: {{light: true, width: 4}}}}
          - {{name: dummy}}
          - {{name: identity}}
        output_dir: {tmp_path / 'runs'}
        results_dir: {tmp_path / 'results'}
        data: {{root: {tmp_path / 'data'}}}
        train: {{iterations: 2, image_size: 32, checkpoint_every: 2, log_every: 1, sample_every: 2, num_workers: 0}}
        eval: {{inception_weights: random, max_block_size: 3}}
        tables: [table1, table3]
        """)
    assert main([str(path), "--no-progress"]) == 0
    return path, tmp_path / "results" / "page"


def digest(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and (p.name == "index.html" or "page" in p.parts)}


def test_the_page_holds_every_model_image_and_run_and_is_rewritten_identically(finished, tiny_dataset):
    path, results = finished
    page = (results / "index.html").read_text()
    for model in ("U-GAT-IT", "dummy", "Identity (no translation)"):
        assert f'data-model="{model}"' in page and f'data-column="{model}"' in page
    assert 'data-column="U-GAT-IT: attention"' in page and "A &lt;small&gt; experiment" in page   # escaped
    sources = re.findall(r'<img data-thumb src="([^"]+)"', page)
    assert len(sources) == 2 * 6 * 5   # two tasks x 6 test images x (source, attention, 3 models)
    assert all((results / source).is_file() for source in sources) and not any(s.startswith(("/", "http")) for s in sources)
    assert len(re.findall(r"<tr data-run=", page)) == 3 and "trained 2 of 2 iterations with 1 torch thread(s) on the CPU" in page
    assert re.findall(r'data-curve src="(figures/curves/[^"]+)"', page)
    before = digest(results)
    assert main([str(path), "--tables-only", "--no-progress"]) == 0
    assert digest(results) == before   # byte for byte


def test_the_page_opens_from_disk_in_chromium_with_every_image_and_no_console_error(finished, tmp_path):
    from test_study import _browser   # Debian's Chromium and chromedriver (.ci/run installs them)

    _, results = finished
    copy = tmp_path / "moved" / "page"   # self-contained: it works moved away from the runs
    shutil.copytree(results, copy)
    browser = _browser()
    try:
        from selenium.webdriver.common.by import By

        browser.get((copy / "index.html").as_uri())
        rows = browser.find_elements(By.CSS_SELECTOR, 'table[data-table="table3"] tr[data-model]')
        assert {row.get_attribute("data-model") for row in rows} == {"U-GAT-IT", "dummy", "Identity (no translation)"}
        browser.execute_script("for (const image of document.images) { image.loading = 'eager'; }")
        deadline = time.time() + 30
        while not browser.execute_script("return [...document.images].filter(i => i.src).every(i => i.complete)"):
            assert time.time() < deadline, "images still loading"
            time.sleep(0.2)
        broken = browser.execute_script("return [...document.images].filter(i => i.src && !i.naturalWidth).map(i => i.src)")
        assert broken == [] and browser.execute_script("return document.images.length") > 60
        first = browser.find_element(By.CSS_SELECTOR, "img[data-thumb]")
        first.click()
        assert browser.find_element(By.ID, "overlay").value_of_css_property("display") == "flex"
        browser.save_screenshot(str(tmp_path / "report.png"))
        assert (tmp_path / "report.png").stat().st_size > 0
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
    finally:
        browser.quit()
