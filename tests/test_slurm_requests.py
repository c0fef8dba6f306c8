"""A cluster user's first submission: requests no node can meet are refused before submission in one line
(also by --dry-run), sbatch's own refusal is one line, --wait counts the jobs and stops on a pending reason
that waiting does not resolve, and --status shows the reasons. The real single-node Slurm of this machine
(.ci/start-slurm: one node, 2 CPUs, no GPU, partition debug) where it can start; parsing and the rules on
the outputs of Slurm 22.05's commands."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core.config import SlurmConfig
from bench.harness.slurm_cluster import (Node, Partition, never_starts, parse_gpus, parse_partition_limits, parse_sinfo,
                                         parse_time_limit, request_problem)

REPO = Path(__file__).resolve().parent.parent

# ----------------------------------------------------------------------------------------------
# What sinfo and scontrol say, and the request rules


SINFO = """\
gpu|g1|64|515000|gpu:a100:4(S:0-1)|2-00:00:00
gpu|g2|32|256000|gpu:a100:2(S:0),shard:8|2-00:00:00
cpu*|c1|128|1000000|(null)|infinite
debug|c1|128|1000000|(null)|30:00
"""


def test_sinfo_and_scontrol_outputs_are_read_as_slurm_writes_them():
    partitions = parse_sinfo(SINFO)
    assert sorted(partitions) == ["cpu", "debug", "gpu"] and partitions["cpu"].default and not partitions["gpu"].default
    assert [(n.name, n.cpus, n.memory_mb, n.gpus) for n in partitions["gpu"].nodes] == [("g1", 64, 515000, 4), ("g2", 32, 256000, 2)]
    assert partitions["gpu"].time_limit_min == 2880 and partitions["cpu"].time_limit_min is None
    assert partitions["debug"].time_limit_min == 30
    assert [parse_time_limit(t) for t in ("infinite", "UNLIMITED", "1-12:00:00", "4:00:00", "30:00", "45", "0:30")] == \
           [None, None, 2160, 240, 30, 45, 1]
    assert [parse_gpus(g) for g in ("(null)", "gpu:2", "gpu:tesla:1(S:0),gpu:v100:3", "shard:8", "gpu")] == [0, 2, 4, 0, 1]
    shown = ("PartitionName=gpu AllowGroups=ALL MaxCPUsPerNode=48 MaxMemPerNode=UNLIMITED MaxTime=2-00:00:00 "
             "TRES=cpu=96,mem=771000M,node=2,billing=96,gres/gpu=6")
    assert parse_partition_limits(shown) == (48, None)


def request(**settings) -> SlurmConfig:
    return SlurmConfig(**{"time_min": 60, **settings})


def test_a_request_no_node_can_meet_is_named_setting_by_setting():
    partitions = parse_sinfo(SINFO)
    fits = request(partition="gpu", cpus_per_job=16, gpus_per_job=2, mem_gb=200, time_min=2880)
    assert request_problem(fits, partitions) is None
    assert request_problem(request(partition="gpu", cpus_per_job=65), partitions) == \
        "launcher.slurm.cpus_per_job=65, but the nodes of partition gpu have at most 64 CPUs"
    assert request_problem(request(gpus_per_job=1), partitions) == \
        "launcher.slurm.gpus_per_job=1, but the nodes of partition cpu have no GPUs (gpus_per_job=0 trains on their CPUs)"
    assert "mem_gb=600, but the nodes of partition gpu have at most 503 GB of memory" in \
        request_problem(request(partition="gpu", mem_gb=600), partitions)
    assert request_problem(request(partition="debug", gpus_per_job=0, time_min=60), partitions).startswith(
        "launcher.slurm.time_min=60, but partition debug allows at most 30 minutes per job")
    # each setting alone fits some node, but no node has them all
    limited = dict(partitions, gpu=Partition("gpu", False, None, (Node("g1", 64, 515000, 1), Node("g2", 8, 256000, 4))))
    assert request_problem(request(partition="gpu", cpus_per_job=16, gpus_per_job=2), limited).startswith(
        "no node of partition gpu has cpus_per_job=16, gpus_per_job=2 at once (g1: 64 CPUs, 1 GPUs; g2: 8 CPUs, 4 GPUs")
    assert request_problem(request(partition="gpus"), partitions) == \
        "launcher.slurm.partition=gpus, but Slurm has no such partition here (sinfo lists cpu, debug, gpu)"
    two = request_problem(request(partition="cpu", cpus_per_job=256, gpus_per_job=1), partitions)
    assert "cpus_per_job=256" in two and "gpus_per_job=1" in two and "\n" not in two   # every setting at once, one line
    capped = dict(partitions, gpu=Partition("gpu", False, None, partitions["gpu"].nodes, max_cpus_per_node=48))
    assert "have at most 48 CPUs" in request_problem(request(partition="gpu", cpus_per_job=60), capped)


@pytest.mark.parametrize("reason, resolves", [
    ("PartitionConfig", False), ("ReqNodeNotAvail, UnavailableNodes:node3", False), ("QOSMaxCpuPerJobLimit", False),
    ("QOSMaxGRESPerJob", False), ("QOSMaxWallDurationPerJobLimit", False), ("AssocMaxNodesPerJobLimit", False),
    ("PartitionTimeLimit", False), ("BadConstraints", False), ("InvalidQOS", False), ("QOSMinGRES", False),
    ("Resources", True), ("Priority", True), ("None", True), ("BeginTime", True), ("QOSMaxJobsPerUserLimit", True),
    ("QOSGrpCpuLimit", True), ("AssocGrpGRES", True), ("JobArrayTaskLimit", True), ("Dependency", True),
])
def test_pending_reasons_that_waiting_does_not_resolve(reason, resolves):
    assert (never_starts(reason) is None) == resolves


# ----------------------------------------------------------------------------------------------
# On the real Slurm


@pytest.fixture
def grid(write_yaml, tiny_dataset, tmp_path) -> Path:
    return write_yaml("grid.yaml", f"""
        name: grid
        output_dir: {tmp_path / 'runs'}
        results_dir: {tmp_path / 'results'}
        datasets: [{{name: tiny, directions: [a2b]}}]
        methods: [{{name: dummy}}, {{name: identity}}]
        data: {{root: {tiny_dataset.parent}}}
        train: {{iterations: 4, image_size: 32, num_workers: 0}}
        eval: {{inception_weights: random, max_block_size: 3}}
        tables: [table3]
        """)


def _queued() -> str:
    return subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True).stdout


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_requests_no_node_can_meet_are_refused_before_submission(slurm_cluster, grid, capsys):
    from bench.cli.run import main

    before = _queued()
    for extra, said in [([], "launcher.slurm.gpus_per_job=1, but the nodes of partition debug have no GPUs"),
                        (["--set", "launcher.slurm.gpus_per_job=0", "--set", "launcher.slurm.cpus_per_job=8"],
                         "launcher.slurm.cpus_per_job=8, but the nodes of partition debug have 2 CPUs")]:
        for mode in (["--dry-run"], ["--wait"]):
            assert main([str(grid), "--launcher", "slurm", "--no-progress", *mode, *extra]) == 2
            line = _one_error_line(capsys)
            assert said in line and "Nothing was submitted" in line
    assert not list(grid.parent.glob("runs/*/*/slurm.json")) and _queued() == before
    assert main([str(grid), "--launcher", "slurm", "--dry-run", "--set", "launcher.slurm.gpus_per_job=0",
                 "--set", "launcher.slurm.cpus_per_job=2"]) == 0
    assert "Slurm: the request fits partition debug (1 node(s), up to 2 CPUs and 0 GPUs per node" in capsys.readouterr().out


def test_sbatch_refusing_the_jobs_is_one_line_with_its_own_message(slurm_cluster, grid, capsys):
    from bench.cli.run import main

    assert main([str(grid), "--launcher", "slurm", "--no-progress", "--set", "launcher.slurm.cpus_per_job=1",
                 "--set", "launcher.slurm.check_request=false"]) == 2   # the GPU request goes to sbatch
    assert _one_error_line(capsys) == ("error: sbatch refused the jobs: sbatch: error: Invalid generic resource (gres) "
                                       "specification. Nothing was submitted")


def _bench(*arguments: str) -> subprocess.CompletedProcess:
    """run_bench.py in its own process: submitit's logger holds the stderr of the process that imported it."""
    return subprocess.run([sys.executable, str(REPO / "run_bench.py"), *arguments, "--no-progress"], capture_output=True,
                          text=True, timeout=300)


def test_a_job_slurm_will_never_start_ends_the_wait_with_its_reason(slurm_cluster, grid):
    arguments = [str(grid), "--launcher", "slurm", "--set", "launcher.slurm.gpus_per_job=0",
                 "--set", "launcher.slurm.cpus_per_job=8", "--set", "launcher.slurm.check_request=false"]
    job_files: list[Path] = []
    try:
        waited = _bench(*arguments, "--wait")   # sbatch queues the jobs; they pend for ever (PartitionConfig)
        assert waited.returncode == 2, waited.stdout[-2000:] + waited.stderr[-2000:]
        [line] = [line for line in waited.stderr.splitlines() if line.startswith("error: ")]
        assert "Traceback" not in waited.stderr
        assert re.search(r"Slurm will not start job \d+_0 \(dummy on tiny, seed 0, and 1 more\): it pends with reason "
                         r"PartitionConfig, the request exceeds what the partition's nodes or limits allow\. Stopped "
                         r"waiting; the jobs stay queued: scancel \d+ removes them", line), line
        job_files = list(grid.parent.glob("runs/*/*/slurm.json"))
        assert len(job_files) == 2
        status = _bench(str(grid), "--status").stdout
        assert status.count("PENDING (PartitionConfig)") == 2 and status.count("Slurm will not start it") == 2
        again = _bench(*arguments).stdout   # queued already: not submitted twice
        assert again.count("already queued as job") == 2
    finally:
        for path in job_files or list(grid.parent.glob("runs/*/*/slurm.json")):
            subprocess.run(["scancel", json.loads(path.read_text())["job_id"].split("_")[0]], check=False)
