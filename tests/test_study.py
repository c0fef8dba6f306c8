"""The user study (Table 2): building, the web app over HTTP, aggregation, a real server under load,
and a real browser (headless Chromium, skipped where it is not installed)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

pytest.importorskip("flask", reason='the study extra is not installed (pip install -e ".[study]")')

from eval.study.aggregate import preference_table, write_table2  # noqa: E402
from eval.study.app import COOKIE, create_app, shown_slots  # noqa: E402
from eval.study.build import TaskSource, build_study, tasks_from_experiment  # noqa: E402
from eval.study.store import CATCH_TARGET, StudyStore  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SECRET = "s3cret-for-tests"


def translations(root: Path, dataset: Path, label: str, direction: str = "a2b") -> Path:
    """A folder of 'translations': copies of the source test images under the same names."""
    folder = root / "translations" / label / direction
    folder.mkdir(parents=True)
    for path in sorted((dataset / ("testA" if direction == "a2b" else "testB")).iterdir()):
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture
def study(tiny_dataset, tmp_path) -> StudyStore:
    """Two candidate methods on tiny_a2b: 3 regular trials and 1 catch trial."""
    task = TaskSource("tiny_a2b", "striped <b>polygons</b>", tiny_dataset / "testA", tiny_dataset / "testB",
                      tiny_dataset / "trainB", {"MethodOne": translations(tmp_path, tiny_dataset, "MethodOne"),
                                                "MethodTwo": translations(tmp_path, tiny_dataset, "MethodTwo")})
    return build_study([task], tmp_path / "study.db", per_task=3, seed=0, catch_per_task=1)


@pytest.fixture
def client(study):
    return create_app(study, SECRET).test_client()


def votes_in(store: StudyStore) -> int:
    return len(store.votes())


def start(client) -> str:
    response = client.post("/start", data={"consent": "yes"})
    assert response.status_code == 303
    return client.get_cookie(COOKIE).value


def current_trial(client) -> tuple[str, int]:
    page = client.get("/trial").get_data(as_text=True)
    trial_id = re.search(r'data-trial="([^"]+)"', page).group(1)
    return trial_id, len(re.findall(r"data-candidate=", page))


def test_a_participant_answers_every_trial_once_and_sees_no_method_or_file_name(client, study, tiny_dataset):
    welcome = client.get("/").get_data(as_text=True)
    assert 'data-action="start"' in welcome and "4 images" in welcome
    assert client.post("/start", data={}).status_code == 400        # no consent, no participant
    assert client.get_cookie(COOKIE) is None
    token = start(client)
    seen = []
    for number in range(1, 5):
        page = client.get("/trial").get_data(as_text=True)
        trial_id = re.search(r'data-trial="([^"]+)"', page).group(1)
        assert f"Image {number} of 4" in page and "striped &lt;b&gt;polygons&lt;/b&gt;" in page   # escaped
        # The source and each candidate are labelled on the page.
        assert re.search(r'data-role="source">.*?<figcaption>The image to translate</figcaption>', page, re.S)
        candidates = len(re.findall(r'data-candidate="\d+"', page))
        assert re.findall(r'<span class="key">Translation (\d)</span>', page) == [str(i) for i in range(1, candidates + 1)]
        for secret in ("MethodOne", "MethodTwo", "translations", "testA", ".png", *[p.stem for p in (tiny_dataset / "testA").iterdir()]):
            assert secret not in page
        for url in re.findall(r'src="([^"]+)"', page):
            assert client.get(url).status_code == 200 and not any(s in url for s in ("Method", ".png", "testA"))
        assert client.post("/vote", data={"trial": trial_id, "choice": "1", "elapsed_ms": "1500"}).status_code == 303
        seen.append(trial_id)
    assert len(set(seen)) == 4
    assert client.get("/trial").headers["Location"].endswith("/done")
    assert 'data-action="done"' in client.get("/done").get_data(as_text=True)
    votes = study.votes()
    assert len(votes) == 4 and {v["participant"] for v in votes} == {token} and {v["response_ms"] for v in votes} == {1500}
    for vote in votes:   # the stored choice is the candidate shown at position 1 to this participant
        assert vote["choice"] == shown_slots(token, study.trial(vote["trial"]))[1]


def test_a_repeated_vote_is_harmless_and_a_reload_resumes(client, study):
    start(client)
    first, _ = current_trial(client)
    page = client.get("/trial").get_data(as_text=True)
    assert current_trial(client)[0] == first and client.get("/trial").get_data(as_text=True) == page   # same order
    for _ in range(3):
        client.post("/vote", data={"trial": first, "choice": "0"})
    assert votes_in(study) == 1
    client.post("/vote", data={"trial": first, "choice": "1"})       # a late change of mind is not a second vote
    assert votes_in(study) == 1 and study.votes()[0]["choice"] == shown_slots(client.get_cookie(COOKIE).value, study.trial(first))[0]
    assert current_trial(client)[0] != first
    returning = create_app(study, SECRET).test_client()                # the same browser, later: continues
    returning.set_cookie(COOKIE, client.get_cookie(COOKIE).value)
    assert current_trial(returning)[0] == current_trial(client)[0]
    assert 'Continue' in returning.get("/").get_data(as_text=True)


def test_everything_the_browser_sends_is_checked_and_refused_without_a_write(client, study):
    anonymous = create_app(study, SECRET).test_client()
    trial = study.trials()[0].id
    assert anonymous.post("/vote", data={"trial": trial, "choice": "0"}).status_code == 403
    anonymous.set_cookie(COOKIE, "forged-token")
    assert anonymous.post("/vote", data={"trial": trial, "choice": "0"}).status_code == 403
    start(client)
    trial, candidates = current_trial(client)
    for data, status in [({"trial": trial, "choice": str(candidates)}, 400), ({"trial": trial, "choice": "-1"}, 400),
                         ({"trial": trial, "choice": "MethodOne"}, 400), ({"trial": trial}, 400),
                         ({"trial": "forged", "choice": "0"}, 400), ({"choice": "0"}, 400),
                         ({"trial": trial, "choice": "0", "elapsed_ms": "-5"}, 400),
                         ({"trial": trial, "choice": "0", "padding": "x" * 5000}, 413)]:
        assert client.post("/vote", data=data).status_code == status, data
    assert votes_in(study) == 0
    assert client.get("/image/not-an-image").status_code == 404
    assert client.get("/image/../../etc/passwd").status_code == 404


def test_the_admin_export_needs_the_secret(client, study):
    start(client)
    trial, _ = current_trial(client)
    client.post("/vote", data={"trial": trial, "choice": "0"})
    assert client.get("/admin/votes.csv").status_code == 403
    assert client.get("/admin/votes.csv", headers={"X-Admin-Secret": "wrong"}).status_code == 403
    # The secret in the URL is refused, even the right one, and nothing is exported.
    for query in (f"?secret={SECRET}", "?secret=wrong"):
        refused = client.get(f"/admin/votes.csv{query}", headers={"X-Admin-Secret": SECRET})
        assert refused.status_code == 400 and "X-Admin-Secret header" in refused.get_data(as_text=True)
        assert "participant,trial" not in refused.get_data(as_text=True)
    response = client.get("/admin/votes.csv", headers={"X-Admin-Secret": SECRET})
    lines = response.get_data(as_text=True).strip().splitlines()
    assert response.status_code == 200 and lines[0].startswith("participant,trial,task") and len(lines) == 2


def test_building_refuses_what_cannot_be_shown(tiny_dataset, tmp_path, study):
    from eval.study.store import StudyError

    one = translations(tmp_path / "other", tiny_dataset, "One")
    (one / sorted(p.name for p in one.iterdir())[0]).unlink()           # one translation missing
    task = TaskSource("tiny_a2b", "polygons", tiny_dataset / "testA", tiny_dataset / "testB", tiny_dataset / "trainB", {"One": one})
    store = build_study([task], tmp_path / "partial.db", per_task=3, catch_per_task=1)
    assert "has no translation of 1 source image(s)" in store.meta("problems")[0]
    with pytest.raises(StudyError, match="only 5 source images"):
        build_study([task], tmp_path / "big.db", per_task=6)
    with pytest.raises(StudyError, match="folder not found"):
        build_study([TaskSource("t", "x", tmp_path / "nowhere", tiny_dataset / "testB", tiny_dataset / "trainB", {"One": one})],
                    tmp_path / "x.db", per_task=1)
    client = create_app(study, SECRET).test_client()
    start(client)
    trial, _ = current_trial(client)
    client.post("/vote", data={"trial": trial, "choice": "0"})
    with pytest.raises(StudyError, match="already holds votes"):
        build_study([task], study.path, per_task=3, catch_per_task=1)


# ----------------------------------------------------------------------------------------------
# Aggregation on a hand-built study with known answers


def hand_built(tmp_path: Path, participants: int, name: str = "hand.db", careless: int = 0, task: str = "T",
               methods: tuple[str, str] = ("A", "B")) -> StudyStore:
    """Task T, methods A and B, 4 regular trials and 1 catch trial; each careful participant votes
    A on 3 trials and B on 1 (75% / 25%); careless ones vote B everywhere and fail the catch trial."""
    store = StudyStore(tmp_path / name, create=True)
    with store.transaction() as db:
        db.execute("INSERT INTO meta VALUES ('format', ?), ('methods', ?), ('seed', '0'), ('per_task', '4')",
                   (json.dumps("ugatit-bench-study/1"), json.dumps(list(methods))))
        db.execute("INSERT INTO tasks VALUES (?, 'target', '[]')", (task,))
        db.execute("INSERT INTO images VALUES ('img', '/nowhere.png')")
        for position in range(5):
            kind = "catch" if position == 4 else "regular"
            db.execute("INSERT INTO trials VALUES (?, ?, ?, ?, 'img')", (f"t{position}", position, task, kind))
            labels = ("source", CATCH_TARGET) if kind == "catch" else methods
            for slot, label in enumerate(labels):
                db.execute("INSERT INTO candidates VALUES (?, ?, ?, 'img')", (f"t{position}", slot, label))
        for person in range(participants + careless):
            token = f"p{person}"
            db.execute("INSERT INTO participants VALUES (?, 0, '')", (token,))
            is_careless = person >= participants
            for position in range(5):
                choice = 0 if is_careless and position == 4 else 1 if position == 4 else \
                    1 if is_careless or position == 3 else 0
                db.execute("INSERT INTO votes VALUES (?, ?, '[0, 1]', ?, 100, 0)", (token, f"t{position}", choice))
    return store


def test_preference_shares_intervals_and_exclusions_on_known_answers(tmp_path):
    import pandas as pd

    small = preference_table(pd.DataFrame(hand_built(tmp_path, 10, careless=3).votes()), ["A", "B"])
    assert small.set_index("model")["preference"].to_dict() == {"A": 75.0, "B": 25.0}   # the careless are excluded
    assert set(small["excluded_participants"]) == {3} and set(small["participants"]) == {10} and set(small["votes"]) == {40}
    assert small["p_equal_preference"].iloc[0] < 0.01
    kept = preference_table(pd.DataFrame(hand_built(tmp_path, 10, "kept.db", careless=3).votes()), ["A", "B"],
                            max_catch_failures=1)
    assert kept.set_index("model")["preference"]["A"] == pytest.approx(100 * 30 / 52)   # 13 people, 52 votes

    # Participants who all agree: the interval is a point; with spread-out voters it narrows as they grow in number.
    assert tuple(small.iloc[0][["ci_low", "ci_high"]]) == (75.0, 75.0)
    import numpy as np

    def width(people: int) -> float:
        rows = [{"participant": f"p{i}", "task": "T", "kind": "regular", "chosen": "A" if (i + j) % 3 else "B"}
                for i in range(people) for j in range(i % 4 + 1)]
        table = preference_table(pd.DataFrame(rows), ["A", "B"], seed=1)
        return float(np.diff(table.iloc[0][["ci_low", "ci_high"]].to_numpy(float))[0])

    assert width(160) < width(40) < width(10)


def test_table2_files_put_the_papers_values_beside(tmp_path):
    store = hand_built(tmp_path, 4, task="selfie2anime", methods=("U-GAT-IT", "CycleGAN"))   # the paper's names
    paths = write_table2(store, tmp_path / "tables")
    text = paths[1].read_text()
    assert "| U-GAT-IT" in text and "75.00 [75.0, 75.0] (73.15)" in text and "25.00 [25.0, 25.0] (20.07)" in text
    import pandas as pd

    tidy = pd.read_csv(paths[0])
    assert list(tidy["paper_preference"]) == [73.15, 20.07] and list(tidy["votes_for"]) == [12, 4]


# ----------------------------------------------------------------------------------------------
# From an experiment, the command line, and a real server under load


def test_a_study_from_an_experiments_translations_through_the_command_line(tiny_dataset, write_yaml, tmp_path, capsys):
    import pandas as pd

    from bench.cli import main as bench_main
    from eval.__main__ import main as eval_main

    experiment = write_yaml("e.yaml", f"""\
        name: e
        output_dir: {tmp_path}/runs
        results_dir: {tmp_path}/results
        datasets: [{{name: tiny, directions: [a2b]}}]
        methods: [{{name: identity}}, {{name: dummy, label: Colours}}]
        data: {{root: {tiny_dataset.parent}}}
        train: {{iterations: 3, image_size: 32, num_workers: 0}}
        eval: {{inception_weights: random}}
        """)
    assert bench_main([str(experiment), "--no-progress"]) == 0
    assert eval_main(["study", "build", "--experiment", str(experiment), "--out", str(tmp_path / "s.db")]) == 2
    assert "none of the paper's methods" in capsys.readouterr().err
    assert eval_main(["study", "build", "--experiment", str(experiment), "--methods", "Colours,Identity (no translation)",
                      "--per-task", "3", "--catch", "1", "--out", str(tmp_path / "s.db")]) == 0
    assert "4 trials (1 catch) over 1 task(s) (tiny_a2b)" in capsys.readouterr().out
    [task] = tasks_from_experiment(experiment, ["Colours"])
    assert task.candidates["Colours"].is_dir() and task.target_domain == "B"
    assert eval_main(["study", "table", str(tmp_path / "s.db"), "--out", str(tmp_path / "t")]) == 0
    assert "No votes yet" in (tmp_path / "t" / "table2.md").read_text()
    store = StudyStore(tmp_path / "s.db")
    client = create_app(store, SECRET).test_client()   # one careful participant answers everything
    token = start(client)
    while "data-trial" in (page := client.get("/trial", follow_redirects=True).get_data(as_text=True)):
        trial = store.trial(re.search(r'data-trial="([^"]+)"', page).group(1))
        target = next((slot for slot, label, _ in trial.candidates if label == CATCH_TARGET), None)
        position = shown_slots(token, trial).index(target) if target is not None else 0
        client.post("/vote", data={"trial": trial.id, "choice": str(position)})
    # table2 in the experiment's tables: made from the study named by eval.study, beside Tables 1 and 3
    assert bench_main([str(experiment), "--tables-only", "--no-progress", "--set", "tables=[table2, table3]",
                       "--set", f"eval.study={tmp_path / 's.db'}"]) == 0
    [written] = list((tmp_path / "results").glob("e*/table2.csv"))
    assert pd.read_csv(written)["votes"].iloc[0] == 3 and "Table 2" in capsys.readouterr().out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(study):
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "eval", "study", "serve", str(study.path), "--port", str(port),
                                "--threads", "16"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    lines = [process.stdout.readline() for _ in range(3)]
    secret = re.search(r'curl -H "X-Admin-Secret: (\S+)" -o votes.csv http://\S+/admin/votes.csv$', lines[1].strip()).group(1)
    assert "?secret=" not in "".join(lines)
    deadline = time.time() + 30
    while True:   # the server prints its links before it listens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.time() < deadline and process.poll() is None, "the study server did not start"
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}", secret
    process.terminate()
    process.wait(timeout=30)


class Participant:
    def __init__(self, base: str):
        self.base, self.opener = base, urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def request(self, path: str, data: dict | None = None) -> tuple[str, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        with self.opener.open(self.base + path, data=body, timeout=60) as response:
            return response.geturl(), response.read().decode()


def test_many_participants_voting_at_once_each_vote_stored_exactly_once(server, study):
    base, secret = server
    participants, trials, errors = 24, len(study.trials()), []

    def take_part(number: int) -> None:
        try:
            person = Participant(base)
            url, page = person.request("/start", {"consent": "yes"})
            while "data-trial" in page:
                trial = re.search(r'data-trial="([^"]+)"', page).group(1)
                for _ in range(2):   # a double click: the second submission changes nothing
                    url, page = person.request("/vote", {"trial": trial, "choice": str(number % 2), "elapsed_ms": "10"})
            assert 'data-action="done"' in page
        except Exception as error:  # reported below, with the participant
            errors.append(f"participant {number}: {error!r}")

    started = time.perf_counter()
    threads = [threading.Thread(target=take_part, args=(n,)) for n in range(participants)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    assert not errors, errors
    votes = study.votes()
    assert len(votes) == participants * trials
    assert len({(v["participant"], v["trial"]) for v in votes}) == participants * trials
    assert len({v["shown"] for v in votes}) > 1                  # candidate order shuffled per participant and trial
    assert len({tuple(v["trial"] for v in votes if v["participant"] == p) for p in {v["participant"] for v in votes}}) > 1
    print(f"\n{participants} participants x {trials} trials, each vote sent twice: "
          f"{2 * participants * trials / seconds:.0f} vote requests/s, {len(votes) / seconds:.0f} stored votes/s")
    request = urllib.request.Request(f"{base}/admin/votes.csv", headers={"X-Admin-Secret": secret})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert len(response.read().decode().strip().splitlines()) == participants * trials + 1
    with pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(f"{base}/admin/votes.csv", timeout=30)


# ----------------------------------------------------------------------------------------------
# A real browser


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no Chromium and chromedriver here (.ci/run installs Debian's chromium and chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


def _gone(element) -> bool:
    """Whether the page that held `element` has been left. Chromium reports a node of a page being replaced
    either as stale or, while the new document loads, as a node that "does not belong to the document"."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        if "does not belong to the document" in str(error):
            return True
        raise
    return False


def test_a_study_answered_in_chromium_by_clicking_and_by_keyboard(server, study, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = server
    browser = _browser()
    made = []   # (trial id, position chosen)
    try:
        browser.get(base + "/")
        browser.find_element(By.NAME, "consent").click()
        browser.find_element(By.CSS_SELECTOR, '[data-action="start"]').click()
        for number in range(len(study.trials())):
            # The page may still be the previous one, navigating away under a loaded machine: read the
            # trial again until one element gives it whole.
            from selenium.common.exceptions import WebDriverException
            root, trial = WebDriverWait(browser, 30, ignored_exceptions=(WebDriverException,)).until(
                lambda b: (lambda element: (element, element.get_attribute("data-trial")))(b.find_element(By.CSS_SELECTOR, "[data-trial]")))
            if number % 2 == 0:
                browser.find_element(By.CSS_SELECTOR, '[data-candidate="1"]').click()
                made.append((trial, 1))
            else:
                browser.find_element(By.TAG_NAME, "body").send_keys("1")   # the key of the first candidate
                made.append((trial, 0))
            WebDriverWait(browser, 30).until(lambda b: _gone(root))
        WebDriverWait(browser, 30).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, '[data-action="done"]')))
        token = browser.get_cookie(COOKIE)["value"]
    finally:
        browser.quit()
    expected = {}
    for trial_id, position in made:
        trial = study.trial(trial_id)
        label = dict((slot, label) for slot, label, _ in trial.candidates)[shown_slots(token, trial)[position]]
        if trial.kind == "regular":
            expected[label] = expected.get(label, 0) + 1
    votes = study.votes()
    assert len(votes) == len(study.trials()) and all(v["response_ms"] > 0 for v in votes)
    import pandas as pd

    table = pd.read_csv(write_table2(study, tmp_path / "tables", max_catch_failures=1)[0])
    assert {row.model: row.votes_for for row in table.itertuples()} == {m: expected.get(m, 0) for m in ("MethodOne", "MethodTwo")}
