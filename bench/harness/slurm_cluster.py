"""What a Slurm cluster says, read before and after submitting: the partition's nodes against a job's
request (sinfo, scontrol), and each queued job's state and pending reason (squeue).

A request no node of the partition can meet is not an error to sbatch: with the default
`EnforcePartLimits=NO` the job is queued and pends for ever (reason `PartitionConfig`). So the request
is compared with the nodes before anything is submitted (`check_request`, also by `--dry-run`), and
refused in one line naming the setting and what the partition has. While waiting, a pending reason that
waiting cannot resolve (`never_starts`) ends the wait with that reason.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from dataclasses import dataclass

from bench.core.config import SlurmConfig
from bench.core.schema import ConfigError

COMMAND_TIMEOUT_S = 30


class SlurmRequestError(ConfigError):
    """A job's request that no node of its partition can meet, or that sbatch refused; one line."""


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    memory_mb: int | None        # RealMemory as configured; None when Slurm does not say
    gpus: int


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool
    time_limit_min: int | None   # None: no limit
    nodes: tuple[Node, ...]
    max_cpus_per_node: int | None = None   # scontrol's MaxCPUsPerNode; None: unlimited
    max_mem_per_node_mb: int | None = None  # scontrol's MaxMemPerNode; None: unlimited


def _run(command: list[str]) -> str | None:
    """A Slurm command's standard output; None when it is absent or fails."""
    if shutil.which(command[0]) is None:
        return None
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout if completed.returncode == 0 else None


def parse_time_limit(text: str) -> int | None:
    """sinfo's %l ('infinite', 'UNLIMITED', 'D-HH:MM:SS', 'HH:MM:SS', 'MM:SS', 'MM') in minutes; None: no limit."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited", "n/a", ""):
        return None
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    hours, minutes, seconds = ([0] * (3 - len(parts)) + parts) if len(parts) > 1 else (0, parts[0], 0)
    return (int(days) if days else 0) * 1440 + hours * 60 + minutes + math.ceil(seconds / 60)


def parse_gpus(gres: str) -> int:
    """GPUs in a node's generic resources, as sinfo's %G gives them ('gpu:a100:4(S:0-1),shard:8', '(null)')."""
    count = 0
    for entry in re.sub(r"\([^)]*\)", "", gres).split(","):
        fields = entry.strip().split(":")
        if fields[0] == "gpu":
            count += int(fields[-1]) if len(fields) > 1 and fields[-1].isdigit() else 1
    return count


def parse_sinfo(text: str) -> dict[str, Partition]:
    """`sinfo -h -N -o '%P|%N|%c|%m|%G|%l'` (a line per node and partition) -> partitions by name."""
    nodes: dict[str, list[Node]] = {}
    limits: dict[str, int | None] = {}
    default = set()
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 6:
            continue
        name, node, cpus, memory, gres, limit = fields
        if name.endswith("*"):
            name = name[:-1]
            default.add(name)
        memory_mb = int(memory.rstrip("+")) if memory.rstrip("+").isdigit() else None
        nodes.setdefault(name, []).append(Node(node, int(cpus.rstrip("+")), memory_mb, parse_gpus(gres)))
        limits[name] = parse_time_limit(limit)
    return {name: Partition(name, name in default, limits[name], tuple(found)) for name, found in nodes.items()}


def parse_partition_limits(text: str) -> tuple[int | None, int | None]:
    """(MaxCPUsPerNode, MaxMemPerNode in MB) from `scontrol show partition NAME -o`; None: unlimited or unsaid."""
    def number(key: str) -> int | None:
        found = re.search(rf"\b{key}=(\d+)\b", text)
        return int(found.group(1)) if found else None

    return number("MaxCPUsPerNode"), number("MaxMemPerNode")


def read_partitions() -> dict[str, Partition] | None:
    """Every partition this user's sinfo lists, with its nodes; None when there is no sinfo, or it fails."""
    listed = _run(["sinfo", "-h", "-N", "-o", "%P|%N|%c|%m|%G|%l"])
    if listed is None:
        return None
    partitions = parse_sinfo(listed)
    for name, partition in partitions.items():
        shown = _run(["scontrol", "show", "partition", name, "-o"])
        if shown:
            cpus, memory = parse_partition_limits(shown)
            partitions[name] = Partition(partition.name, partition.default, partition.time_limit_min, partition.nodes,
                                         cpus, memory)
    return partitions


def _gb(memory_mb: float) -> str:
    return f"{memory_mb / 1024:.3g} GB"


def _at_most(values: list, text: str) -> str:
    return ("" if len(set(values)) == 1 else "at most ") + text


def request_problem(slurm: SlurmConfig, partitions: dict[str, Partition]) -> str | None:
    """The one line that says why no node of the job's partition can run it; None when one can."""
    if slurm.partition is None:
        defaults = [p for p in partitions.values() if p.default]
        if not defaults:
            return (f"launcher.slurm.partition is not set and Slurm has no default partition: set it to one of "
                    f"{', '.join(sorted(partitions))}")
        partition = defaults[0]
    elif slurm.partition not in partitions:
        return (f"launcher.slurm.partition={slurm.partition}, but Slurm has no such partition here (sinfo lists "
                f"{', '.join(sorted(partitions)) or 'none'})")
    else:
        partition = partitions[slurm.partition]
    name, nodes = partition.name, partition.nodes

    def usable_cpus(node: Node) -> int:
        return min(node.cpus, partition.max_cpus_per_node or node.cpus)

    def usable_memory(node: Node) -> float:
        return min(node.memory_mb if node.memory_mb is not None else math.inf, partition.max_mem_per_node_mb or math.inf)

    problems = []
    cpus = [usable_cpus(n) for n in nodes]
    if slurm.cpus_per_job > max(cpus):
        problems.append(f"launcher.slurm.cpus_per_job={slurm.cpus_per_job}, but the nodes of partition {name} have "
                        + _at_most(cpus, f"{max(cpus)} CPUs"))
    gpus = [n.gpus for n in nodes]
    if slurm.gpus_per_job > max(gpus):
        problems.append(f"launcher.slurm.gpus_per_job={slurm.gpus_per_job}, but the nodes of partition {name} have "
                        + ("no GPUs (gpus_per_job=0 trains on their CPUs)" if max(gpus) == 0
                           else _at_most(gpus, f"{max(gpus)} GPUs")))
    wanted_mb = slurm.mem_gb * 1024 if slurm.mem_gb else 0
    memory = [usable_memory(n) for n in nodes]
    if wanted_mb > max(memory):
        problems.append(f"launcher.slurm.mem_gb={slurm.mem_gb:g}, but the nodes of partition {name} have "
                        + _at_most(memory, f"{_gb(max(memory))} of memory"))
    if partition.time_limit_min is not None and slurm.time_min > partition.time_limit_min:
        problems.append(f"launcher.slurm.time_min={slurm.time_min}, but partition {name} allows at most "
                        f"{partition.time_limit_min} minutes per job (a job at its limit requeues itself and resumes, so "
                        f"time_min={partition.time_limit_min} trains the same runs)")
    if problems:
        return "; and ".join(problems)
    if not any(usable_cpus(n) >= slurm.cpus_per_job and n.gpus >= slurm.gpus_per_job and usable_memory(n) >= wanted_mb
               for n in nodes):
        shown = "; ".join(f"{n.name}: {usable_cpus(n)} CPUs, {n.gpus} GPUs"
                          + (f", {_gb(usable_memory(n))}" if wanted_mb else "") for n in nodes[:4])
        return (f"no node of partition {name} has cpus_per_job={slurm.cpus_per_job}, gpus_per_job={slurm.gpus_per_job}"
                + (f" and mem_gb={slurm.mem_gb:g}" if wanted_mb else "") + f" at once ({shown}"
                + (f"; {len(nodes) - 4} more" if len(nodes) > 4 else "") + ")")
    return None


def check_request(slurm: SlurmConfig) -> str:
    """Refuse (SlurmRequestError, one line) a job request no node of its partition can meet. Returns what was
    checked against, or why nothing was, for --dry-run to print."""
    if not slurm.check_request:
        return "the request is not compared with the cluster's nodes (launcher.slurm.check_request: false)"
    partitions = read_partitions()
    if partitions is None:
        return "the request is not compared with the cluster's nodes: sinfo is not here or did not answer"
    problem = request_problem(slurm, partitions)
    if problem is not None:
        raise SlurmRequestError(f"{problem}. Nothing was submitted (where sinfo does not show the nodes your jobs "
                                "run on, launcher.slurm.check_request=false submits without this check)")
    partition = partitions[slurm.partition] if slurm.partition else next(p for p in partitions.values() if p.default)
    return (f"the request fits partition {partition.name} ({len(partition.nodes)} node(s), up to "
            f"{max(n.cpus for n in partition.nodes)} CPUs and {max(n.gpus for n in partition.nodes)} GPUs per node, "
            + (f"{partition.time_limit_min} minutes per job)" if partition.time_limit_min is not None else "no time limit)"))


# ----------------------------------------------------------------------------------------------
# The queue


@dataclass(frozen=True)
class QueuedJob:
    state: str        # PENDING, RUNNING, ...
    reason: str       # why it pends ('None' when it does not, or Slurm has not decided yet)


# Pending reasons that waiting does not resolve: the request exceeds what the partition, its nodes or the
# job's QOS/association allow for one job, or names something that is not there. Limits on a user's or a
# group's running total (QOSMaxJobsPerUserLimit, QOSGrpCpuLimit, ...) resolve as other jobs end: not here.
NEVER_RESOLVES = {
    "PartitionConfig": "the request exceeds what the partition's nodes or limits allow",
    "PartitionNodeLimit": "the request needs more nodes than the partition allows",
    "PartitionTimeLimit": "the time limit exceeds the partition's",
    "ReqNodeNotAvail": "the nodes the job needs are down, drained or reserved",
    "BadConstraints": "no node has the requested features (launcher.slurm.constraint)",
    "InvalidQOS": "the QOS does not exist or is not allowed (launcher.slurm.qos)",
    "InvalidAccount": "the account does not exist or is not allowed (launcher.slurm.account)",
    "DependencyNeverSatisfied": "a job it depends on failed",
}
_PER_JOB_LIMIT = re.compile(r"^(QOS|Assoc)(Max|Min)\w*(PerJob|PerNode|Wall\w*PerJob)\w*$|^QOSMin\w+$")


def never_starts(reason: str) -> str | None:
    """Why a job pending with `reason` will not start by waiting; None when it may."""
    key = reason.split(",")[0].strip()
    if key in NEVER_RESOLVES:
        return NEVER_RESOLVES[key]
    if _PER_JOB_LIMIT.match(key):
        return "the request exceeds a per-job limit of its QOS or association (launcher.slurm.qos, account)"
    return None


def read_queue(job_ids: list[str]) -> dict[str, QueuedJob] | None:
    """Job id -> state and reason for the jobs squeue still lists (one call; array tasks as '<array>_<task>');
    None when Slurm cannot tell."""
    if not job_ids:
        return {}
    if shutil.which("squeue") is None:
        return None
    try:
        completed = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T|%r", "-j", ",".join(sorted(set(job_ids)))],
                                   capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    if completed.returncode != 0 and "Invalid job id" not in completed.stderr:
        return None
    queue = {}
    for line in completed.stdout.splitlines():
        parts = line.strip().split("|", 2)
        if len(parts) == 3:
            queue[parts[0]] = QueuedJob(parts[1], parts[2])
    return queue
