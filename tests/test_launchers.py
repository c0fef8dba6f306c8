"""Launchers and run safety: local workers, Slurm (real when it can start, else submitit's LocalExecutor),
run-folder locks, concurrent invocations, --status, the cost estimate and TensorBoard event files.

Every command runs with the default thread count, one torch thread per run under every launcher
(launcher.threads): results are bitwise reproducible for a given thread count (two threads sum
convolutions in another order), so the launchers must give equal tables.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.harness.locks import RunLock, RunLocked, lock_owner

REPO = Path(__file__).resolve().parent.parent

GRID = """\
name: grid
output_dir: {root}/runs
results_dir: {root}/results
datasets:
  - name: tiny
methods:
  - {{name: cyclegan, options: {{width: 8}}}}
  - name: dummy
  - name: identity
data: {{root: {data}}}
train: {{iterations: {iterations}, image_size: 32, seeds: [0, 1], checkpoint_every: 20, log_every: 10, sample_every: 100, num_workers: 0}}
eval: {{protocol: paper, inception_weights: random}}
tables: [table3]
"""


_MODULE_CACHE: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def module_cache(tmp_path_factory):
    """One feature cache for every command of this module (set up before the module's other fixtures,
    which run before a test's own environment exists): the Inception features of an image set are
    computed once, with one thread, like everything here."""
    _MODULE_CACHE[:] = [tmp_path_factory.mktemp("launcher-cache")]
    yield


def environment() -> dict[str, str]:
    return {**os.environ, "UGATIT_BENCH_CACHE": str(_MODULE_CACHE[0]),
            "UGATIT_BENCH_RUN_INDEX": str(_MODULE_CACHE[0] / f"index-{time.monotonic_ns()}.json")}


def bench(*args: str, cwd: Path, check: bool = True, **popen) -> subprocess.CompletedProcess:
    completed = subprocess.run([sys.executable, str(REPO / "run_bench.py"), *args, "--no-progress"], cwd=cwd,
                               capture_output=True, text=True, timeout=600, env=environment(), **popen)
    if check:
        assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed


def start_bench(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "run_bench.py"), *args, "--no-progress"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment())


def write_grid(folder: Path, data: Path, iterations: int = 60) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "grid.yaml"
    path.write_text(GRID.format(root=folder, data=data, iterations=iterations))
    return path


def table(folder: Path) -> str:
    return (folder / "results" / "grid" / "table3.md").read_text().replace(str(folder), "FOLDER")


def scores(folder: Path) -> list:
    """(model, seed, task, KID, std, FID) per row, the numbers to 6 significant digits: the Inception
    features of one image set may come from the shared feature cache, computed by a process with another
    thread count (the last bits differ)."""
    import pandas as pd

    [path] = list((folder / "results").glob("*/scores.csv"))
    frame = pd.read_csv(path)
    rows = frame[["model", "seed", "task", "kid", "std", "fid"]].fillna(-1.0).sort_values(["model", "seed", "task"])
    return [(r.model, r.seed, r.task, *(float(f"{x:.6g}") for x in (r.kid, r.std, r.fid))) for r in rows.itertuples()]


def trainings_started(folder: Path) -> dict[str, int]:
    """Run folder -> how many times a training started there (from its log)."""
    return {log.parent.name: log.read_text().count(" training ") for log in (folder / "runs").glob("*/*/log.txt")}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    from conftest import TINY_SPEC

    from bench.data.synthetic import write_dataset

    root = tmp_path_factory.mktemp("launcher-data")
    write_dataset(root / "tiny", TINY_SPEC)
    return root


@pytest.fixture(scope="module")
def serial(tmp_path_factory, data_root) -> Path:
    """The grid run one after another in one process, with the default settings: the reference of every launcher."""
    folder = tmp_path_factory.mktemp("serial")
    bench(str(write_grid(folder, data_root)), "--no-reuse", cwd=folder)
    return folder


def thread_records(folder: Path) -> set:
    """(torch threads of the start in config.json, trained_with of result.json) of every run."""
    return {(json.loads((run / "config.json").read_text())["torch_threads"],
             json.dumps(json.loads((run / "result.json").read_text()).get("trained_with"))) for run in folder.glob("runs/*/*")
            if run.is_dir() and (run / "result.json").exists()}


# ----------------------------------------------------------------------------------------------
# Locks


def _hold_lock_in_child(run_dir: Path) -> subprocess.Popen:
    code = ("import sys, time; from bench.harness.locks import RunLock; lock = RunLock(sys.argv[1]); lock.acquire(); "
            "print('held', flush=True); time.sleep(120)")
    child = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_held_lock_names_its_owner_and_a_dead_owners_lock_is_taken_over(tmp_path, caplog):
    run_dir = tmp_path / "run"
    child = _hold_lock_in_child(run_dir)
    try:
        with pytest.raises(RunLocked, match=rf":{child.pid}"):
            RunLock(run_dir).acquire()
        owner = lock_owner(run_dir)
        assert owner["pid"] == child.pid and owner["alive"] is True
    finally:
        child.send_signal(signal.SIGKILL)   # dies holding the lock: the kernel drops it, the record stays
        child.wait()
    assert lock_owner(run_dir)["alive"] is False
    with caplog.at_level("INFO", logger="bench"), RunLock(run_dir):
        assert lock_owner(run_dir)["pid"] == os.getpid()
    assert "taking over the lock left by" in caplog.text and str(child.pid) in caplog.text
    assert lock_owner(run_dir) is None   # released in good order: no record


def test_reading_the_owner_never_takes_the_lock(tmp_path):
    with RunLock(tmp_path / "run"):
        for _ in range(3):
            assert lock_owner(tmp_path / "run")["alive"] is True
        with pytest.raises(RunLocked):   # a second holder in the same process is refused too
            RunLock(tmp_path / "run").acquire()


# ----------------------------------------------------------------------------------------------
# Local workers and concurrent invocations


def test_each_worker_gets_the_runs_thread_count_and_its_own_gpu(monkeypatch):
    import multiprocessing

    import torch

    from bench.core.config import LauncherConfig
    from bench.harness.local_workers import _start_worker, idle_cores_hint, resolve_jobs

    monkeypatch.setattr("bench.harness.local_workers.cpu_count", lambda: 16)
    assert resolve_jobs(LauncherConfig(jobs="auto"), "cpu") == 16
    # the cores a CPU run leaves idle: more runs at once keep the numbers, more threads change them
    assert idle_cores_hint(LauncherConfig(), 1, 10, "cpu") == (
        "1 of this machine's 16 cores train (1 run(s) at once, 1 torch thread(s) each). --jobs 10 runs more at once: "
        "the same numbers, sooner. --threads 16 gives each run more threads: sooner, but other numbers (README: Thread counts).")
    assert "--jobs" not in idle_cores_hint(LauncherConfig(threads=2), 4, 4, "cpu")
    assert idle_cores_hint(LauncherConfig(), 16, 20, "cpu") is None and idle_cores_hint(LauncherConfig(), 1, 2, "cuda") is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert resolve_jobs(LauncherConfig(jobs="auto"), "auto") == 3 and resolve_jobs(LauncherConfig(jobs="auto"), "cpu") == 16
    slots = multiprocessing.get_context("spawn").Queue()
    slots.put(4)
    threads, root = torch.get_num_threads(), logging.getLogger()
    handlers, level = list(root.handlers), root.level
    monkeypatch.setattr("bench.harness.local_workers.end_with_parent", lambda parent: None)   # no watcher in pytest itself
    try:
        _start_worker(os.getppid(), slots, 1, ["0", "1", "2"])
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "1" and torch.get_num_threads() == 1   # slot 4 of 3 GPUs
    finally:
        torch.set_num_threads(threads)
        root.handlers[:] = handlers
        root.setLevel(level)


def test_two_local_workers_give_the_serial_tables(serial, data_root, tmp_path):
    """The default thread count does not depend on the launcher: the serial default and --jobs 2 train alike."""
    completed = bench(str(write_grid(tmp_path, data_root)), "--jobs", "2", "--no-reuse", cwd=tmp_path)
    assert "on 2 local workers, 1 torch thread(s) each" in completed.stdout
    assert table(tmp_path) == table(serial)
    assert scores(tmp_path) == scores(serial)
    trained = json.dumps([{"device": "cpu", "from_step": 0, "threads": 1, "to_step": 60}])
    assert thread_records(tmp_path) == thread_records(serial) == {(1, trained)}
    assert set(trainings_started(tmp_path).values()) == {1}


@pytest.mark.slow   # the smoke's 8 U-GAT-IT variants twice at 60 iterations, a few minutes; .ci/run runs it
def test_the_smoke_tables_are_the_same_one_run_after_another_and_on_two_workers(tmp_path_factory):
    """What the one default thread count settles: the serial launcher used to train with 2 threads and workers
    with 1, and U-GAT-IT's KID x100 came out 0.1535 under one and 0.1761 under the other on these settings.
    (The whole smoke experiment, every method at its own length: benchmarks/launchers.py.)"""
    folders = []
    for jobs in ("1", "2"):
        folder = tmp_path_factory.mktemp(f"smoke-jobs-{jobs}")
        bench(str(REPO / "experiments" / "smoke.yaml"), "--jobs", jobs, "--no-reuse", "--only", "ugatit",
              "--set", "train.iterations=60",
              "--set", f"output_dir={folder / 'runs'}", "--set", f"results_dir={folder / 'results'}",
              "--set", f"data.root={folder / 'data'}", cwd=folder)
        folders.append(folder)
    results = [f / "results" / "smoke+train.iterations=60" for f in folders]   # overrides name their own folder
    for name in ("table1.md", "table3.md", "table1.csv", "table3.csv"):
        serial, workers = ((r / name).read_text().replace(str(f), "FOLDER") for r, f in zip(results, folders))
        assert serial == workers, name
    assert len({row[0] for row in scores(folders[0])}) == 8 and scores(folders[0]) == scores(folders[1])
    assert "thread" not in (results[0] / "table1.md").read_text()


@pytest.mark.slow   # 17 s; .ci/run runs the slow launcher tests
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="lists processes through /proc (Linux)")
def test_workers_end_when_their_command_is_killed(data_root, tmp_path):
    """SIGKILL (or SIGTERM) gives run_bench no chance to stop its workers: they must notice alone, or they
    would train on unseen, holding the run locks against the restarted command. Killed at two moments:
    while the workers start up, and once they train."""
    for moment in ("starting", "training"):
        command = start_bench(str(write_grid(tmp_path / moment, data_root, iterations=100_000)), "--jobs", "2",
                              "--no-reuse", cwd=tmp_path)
        deadline = time.time() + 120

        def ready() -> bool:
            locks = list((tmp_path / moment).glob("runs/*/*/.lock"))
            return len(children(command.pid)) >= 2 and (moment == "starting" or bool(locks))

        while not ready():
            assert command.poll() is None, command.stdout.read()
            assert time.time() < deadline, "the workers did not start in 120 s"
            time.sleep(0.02)
        if moment == "training":
            time.sleep(1.0)
        processes = children(command.pid)
        command.kill()
        command.wait()
        try:
            deadline = time.time() + 20
            while alive := [pid for pid in processes if process_alive(pid)]:
                assert time.time() < deadline, f"{moment}: processes {alive} still run after their command was killed"
                time.sleep(0.1)
        finally:   # never leave a failed test's workers training in the background
            for pid in processes:
                if process_alive(pid):
                    os.kill(pid, signal.SIGKILL)


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (its workers, and multiprocessing's resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def process_alive(pid: int) -> bool:
    """safeio.files.process_is_alive, but a zombie (exited, not yet reaped by its new parent) counts as gone."""
    from safeio.files import process_is_alive

    try:
        return process_is_alive(pid) and Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.slow   # 24 s; .ci/run runs the slow launcher tests
def test_two_invocations_at_once_train_every_run_once_and_write_complete_tables(serial, data_root, tmp_path):
    experiment = str(write_grid(tmp_path, data_root))
    first = start_bench(experiment, "--no-reuse", cwd=tmp_path)
    deadline = time.time() + 120
    while not any(lock_owner(p.parent) for p in (tmp_path / "runs").glob("*/*/.lock")):   # the first holds a run
        assert time.time() < deadline and first.poll() is None, first.stdout.read() if first.poll() is not None else "timeout"
        time.sleep(0.05)
    second = bench(experiment, "--threads", "1", "--no-reuse", cwd=tmp_path)
    first_output = first.communicate(timeout=600)[0]
    assert first.returncode == 0, first_output[-3000:]
    assert "running elsewhere" in second.stdout + first_output
    assert trainings_started(tmp_path) and set(trainings_started(tmp_path).values()) == {1}
    bench(experiment, "--tables-only", cwd=tmp_path)   # whatever order they finished in, the records are whole
    assert scores(tmp_path) == scores(serial)


def test_status_shows_each_state_of_a_half_finished_experiment(serial, data_root, tmp_path):
    from bench.harness.experiment_file import load_experiment
    from bench.harness.plan import plan_experiment

    experiment_path = write_grid(tmp_path, data_root)
    shutil.copytree(serial / "runs", tmp_path / "runs")
    plan = plan_experiment(load_experiment(experiment_path), reuse=False)
    by_variant = {(t.method.name, t.seed): t.run_dir for t in plan.trainings}
    stopped = by_variant[("cyclegan", 1)]
    for name in ("training.json", "result.json"):
        (stopped / name).unlink()
    shutil.rmtree(stopped / "translations")
    with open(stopped / "stats.jsonl") as handle:
        lines = handle.readlines()[:2]   # stopped at step 20 of 60
    (stopped / "stats.jsonl").write_text("".join(lines))
    (by_variant[("dummy", 0)] / "result.json").unlink()                     # translated, not scored
    (by_variant[("dummy", 1)] / "failure.json").write_text(json.dumps({"error": "ValueError: broken"}))
    shutil.rmtree(by_variant[("identity", 1)])                              # not started

    def status() -> tuple[dict, str]:
        output = bench(str(experiment_path), "--status", cwd=tmp_path).stdout
        rows = {}
        for line in output.splitlines():
            cells = re.split(r"\s{2,}", line.strip())   # tabulate's columns; the variant may hold single spaces
            if len(cells) > 3 and cells[2].isdigit():
                rows[(cells[0], int(cells[2]))] = (cells[3], line)
        return rows, output

    cyclegan, dummy, identity = (t.variant for t in plan.trainings[::2])
    child = _hold_lock_in_child(stopped)   # as a worker training it would
    try:
        rows, output = status()
    finally:
        child.kill()
        child.wait()
    assert rows[(cyclegan, 0)][0] == "scored" and rows[(identity, 0)][0] == "scored"
    threads = re.compile(r" of 60\s+[\d.e-]+\s+(\d+ min\s+)?1\s{2,}")   # the torch threads it trained (or trains) with
    assert "threads" in output.splitlines()[1] and threads.search(rows[(cyclegan, 0)][1])
    state, line = rows[(cyclegan, 1)]
    assert state == "training" and "20 of 60" in line and " min" in line and f"locked by {socket.gethostname()}:{child.pid}" in line
    assert threads.search(line)   # from config.json: it has no training.json yet
    assert rows[(dummy, 0)][0] == "translated"
    assert rows[(dummy, 1)][0] == "failed" and "ValueError: broken" in rows[(dummy, 1)][1]
    assert rows[(identity, 1)][0] == "not started"
    rows, _ = status()   # its worker died: a stopped run, resumable, with a lock to take over
    state, line = rows[(cyclegan, 1)]
    assert state == "stopped" and f"stale lock of dead process {socket.gethostname()}:{child.pid}" in line
    assert "6 run(s): " in output


# ----------------------------------------------------------------------------------------------
# Slurm: a real single-node cluster where it can start, else submitit's LocalExecutor


SLURM_SETTINGS = ["--set", "launcher.slurm.gpus_per_job=0", "--set", "launcher.slurm.cpus_per_job=1",
                  "--set", "launcher.slurm.time_min=30", "--set", "launcher.slurm.mem_gb=2"]


@pytest.mark.slow   # 29 s; kept out of the default suite for its 10-minute budget; .ci/run runs it
def test_submitit_local_executor_runs_the_same_job_path(serial, data_root, tmp_path):
    completed = bench(str(write_grid(tmp_path, data_root)), "--launcher", "slurm", "--wait", "--no-reuse",
                      "--set", "launcher.slurm.executor=local", *SLURM_SETTINGS, cwd=tmp_path)
    assert "submitit's LocalExecutor" in completed.stdout and "submitted 6 job(s)" in completed.stdout
    assert scores(tmp_path) == scores(serial)
    assert table(tmp_path) == table(serial)


@pytest.mark.slow   # 37 s; kept out of the default suite for its 10-minute budget; .ci/run runs it
def test_the_grid_on_a_real_slurm_gives_the_local_tables(slurm_cluster, serial, data_root, tmp_path):
    experiment = str(write_grid(tmp_path, data_root))
    started = time.monotonic()
    completed = bench(experiment, "--launcher", "slurm", "--wait", "--no-reuse",
                      "--set", f"launcher.slurm.partition={slurm_cluster}", *SLURM_SETTINGS, cwd=tmp_path)
    assert "submitted 6 job(s)" in completed.stdout
    counts = re.findall(r"^\d\d:\d\d:\d\d jobs: (\d+) pending, (\d+) running, 0 done, 0 failed$", completed.stdout, re.M)
    assert counts and sum(map(int, counts[0])) == 6   # --wait's line of counts: at the start, then once a minute at most
    assert len(re.findall(r" jobs: \d+ pending", completed.stdout)) <= 1 + (time.monotonic() - started) / 60
    assert scores(tmp_path) == scores(serial)
    assert table(tmp_path) == table(serial)
    status = bench(experiment, "--status", cwd=tmp_path).stdout
    assert status.count(" scored ") == 6 and " ended" in status   # the job ids are recorded; squeue no longer lists them
    again = bench(experiment, "--launcher", "slurm", "--no-reuse", *SLURM_SETTINGS, cwd=tmp_path).stdout
    assert again.count("not submitted") == 6 and "complete" in again   # nothing is submitted twice


@pytest.mark.slow   # Slurm holds a requeued job for about two minutes before it starts again; .ci/run runs it
def test_a_preempted_slurm_job_requeues_and_resumes_to_the_same_result(slurm_cluster, data_root, tmp_path_factory):
    long_run = ["--only", "cyclegan", "--set", "train.seeds=[0]", "--set", "train.iterations=300"]
    reference = tmp_path_factory.mktemp("uninterrupted")
    bench(str(write_grid(reference, data_root)), "--no-reuse", *long_run, cwd=reference)

    folder = tmp_path_factory.mktemp("preempted")
    experiment = str(write_grid(folder, data_root))
    bench(experiment, "--launcher", "slurm", "--no-reuse", *long_run,
          "--set", f"launcher.slurm.partition={slurm_cluster}", *SLURM_SETTINGS, cwd=folder)
    [job_file] = list((folder / "runs").glob("*/*/slurm.json"))
    job_id, stats = json.loads(job_file.read_text())["job_id"], job_file.parent / "stats.jsonl"
    deadline = time.time() + 300
    while not (stats.exists() and len(stats.read_text().splitlines()) >= 5):   # past its checkpoint at step 20 or 40
        assert time.time() < deadline, "the job did not start training"
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)   # what Slurm sends before a preemption
    while not (job_file.parent / "result.json").exists():
        assert time.time() < deadline + 300, "the requeued job did not finish"
        time.sleep(1)
    marker = json.loads((job_file.parent / "training.json").read_text())
    assert marker["resumed_from"] and 0 < marker["resumed_from"] < 300      # it resumed from a checkpoint
    bench(experiment, "--tables-only", *long_run, cwd=folder)
    assert scores(folder) == scores(reference)


@pytest.mark.slow   # a real Slurm job array of one run; .ci/run runs it
def test_a_method_an_experiment_imports_from_a_file_runs_in_a_slurm_job(slurm_cluster, data_root, tmp_path):
    """The job process has never imported the experiment's .py file: submitit carries its code (cloudpickle by value)."""
    example = REPO / "examples" / "my_method"
    experiment = tmp_path / "mine.yaml"
    experiment.write_text(f"""
name: mine
imports: [{example / 'my_translation_method' / 'method.py'}]
datasets: [{{name: tiny, directions: [a2b]}}]
methods: [{{name: tinycycle, label: TinyCycle, options: {{width: 4}}}}]
output_dir: {tmp_path / 'runs'}
results_dir: {tmp_path / 'results'}
data: {{root: {data_root}}}
train: {{iterations: 4, image_size: 32, num_workers: 0}}
eval: {{inception_weights: random, max_block_size: 3}}
tables: [table3]
""")
    completed = bench(str(experiment), "--launcher", "slurm", "--wait", "--no-reuse",
                      "--set", f"launcher.slurm.partition={slurm_cluster}", *SLURM_SETTINGS, cwd=tmp_path)
    assert "submitted 1 job(s)" in completed.stdout
    assert "TinyCycle" in (tmp_path / "results" / "mine" / "table3.md").read_text()
