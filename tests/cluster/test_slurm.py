"""The workflow on a real one-node SLURM cluster that this test starts and stops (`make test-cluster`).

As root on Debian: installs `slurmctld slurmd slurm-client munge` when missing, writes a one-node
`slurm.conf` for this host into a temporary folder (no cgroups: `proctrack/linuxproc`, `task/none`; two
GPUs declared as generic resources without devices so that `--gpus=1` jobs are scheduled), starts its own
`munged` (own key and socket), `slurmctld` and `slurmd` in the foreground, records their process ids, waits
until `sinfo` shows the node idle, then:

1. runs the `ci` configuration locally (`--cores 2`) for reference tables;
2. runs it through `snakemake --workflow-profile workflow/profiles/slurm`, cancels one running job with
   `scancel` on the way, and checks that `--retries` resubmitted it and the run completed;
3. asserts that every job ran under SLURM (the provenance sidecars of every attribution and score file
   record a `SLURM_JOB_ID`) and that the tables equal the local ones byte for byte.

It stops exactly the processes it started (by their ids, never by name), also when something fails.
Where it cannot run (not root, no apt-get) it is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
TIMEOUT = 600  # seconds for each workflow run
SLURMD_CACHE = Path("/run/slurm")
# What a site sets on the command line: here, a one-node cluster of this machine's size.
SITE_RESOURCES = ["--default-resources", "cpus_per_task=1", "mem_mb=1500", "runtime=30",
                  "--set-resources", *[f"{rule}:mem_mb=3000" for rule in ("train", "explain", "score", "speed")]]


def say(message: str) -> None:
    print(f"[slurm-test {time.strftime('%H:%M:%S')}] {message}", flush=True)


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "not root (slurmd and munged must be started as root)"
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        return "apt-get is not available (Debian-only set-up)"
    return None


def install() -> None:
    missing = [p for p in PACKAGES if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode]
    if missing:
        say(f"installing {' '.join(missing)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True,
                       env=env, stdout=subprocess.DEVNULL)


def write_conf(base: Path) -> Path:
    host = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    memory = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.9)
    for d in ("state", "spool"):
        (base / d).mkdir()
    conf = base / "slurm.conf"
    conf.write_text(f"""ClusterName=wambench
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
SlurmctldParameters=enable_configless
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
StateSaveLocation={base / 'state'}
SlurmdSpoolDir={base / 'spool'}
SlurmctldPidFile={base / 'slurmctld.pid'}
SlurmdPidFile={base / 'slurmd.pid'}
SlurmctldLogFile={base / 'slurmctld.log'}
SlurmdLogFile={base / 'slurmd.log'}
SlurmctldPort=16817
SlurmdPort=16818
ReturnToService=2
DefMemPerCPU={memory // (2 * cpus)}
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
NodeName={host} CPUs={cpus} RealMemory={memory} Gres=gpu:2 State=UNKNOWN
PartitionName=main Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    # two GPUs without devices behind them (no cgroups): enough for `--gpus=1` jobs to be scheduled
    (base / "gres.conf").write_text("AutoDetect=off\nName=gpu File=/dev/null\nName=gpu File=/dev/zero\n")
    return conf


class Cluster:
    """munged, slurmctld and slurmd started by this process; stopped by their process ids."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.processes: list[subprocess.Popen] = []
        self.created_run_dir = False
        self.env = {**os.environ, "SLURM_CONF": str(write_conf(base))}

    def start(self) -> None:
        self.created_run_dir = not SLURMD_CACHE.exists()
        if munge_answers():
            say("using the munged already running on this host")
        else:
            self._start_munged()
        self._spawn(["slurmctld", "-D", "-i"])
        # slurmd fetches its configuration from slurmctld (configless): it then serves it to the commands
        # run inside jobs (/run/slurm/conf), which Snakemake's job step starts without SLURM_CONF.
        host = socket.gethostname().split(".")[0]
        slurmd_env = {k: v for k, v in self.env.items() if k != "SLURM_CONF"}
        self._spawn(["slurmd", "-D", "--conf-server", f"{host}:16817"], env=slurmd_env)
        self._wait(self._idle, "the node to be idle in sinfo")
        say(f"cluster up: pids {[p.pid for p in self.processes]}")

    def _start_munged(self) -> None:
        """munged as the munge user, on the default socket (slurmd reads it before it has a configuration),
        with a key of its own in the temporary folder."""
        munge = pwd.getpwnam("munge")
        folder = self.base / "munge"
        folder.mkdir(mode=0o700)
        run_dir = Path("/run/munge")
        run_dir.mkdir(mode=0o755, exist_ok=True)
        key = folder / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        for path in (folder, key, run_dir):
            os.chown(path, munge.pw_uid, munge.pw_gid)
        self.base.chmod(0o711)
        self._spawn(["munged", "--foreground", f"--key-file={key}", f"--pid-file={folder / 'munged.pid'}",
                     f"--log-file={folder / 'munged.log'}", f"--seed-file={folder / 'munged.seed'}", "--force"],
                    user=munge.pw_uid, group=munge.pw_gid)
        self._wait(munge_answers, "munged to answer")

    def _spawn(self, cmd: list[str], env: dict | None = None, **kwargs) -> None:
        log = open(self.base / f"{Path(cmd[0]).name}.out", "w")  # noqa: SIM115 (closed with the process)
        self.processes.append(subprocess.Popen(cmd, env=env or self.env, stdout=log, stderr=subprocess.STDOUT,
                                               **kwargs))

    def _idle(self) -> bool:
        for p in self.processes:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args[0]} exited with {p.returncode}; see {self.base}")
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True)
        return out.stdout.strip() == "idle"

    @staticmethod
    def _wait(ready, what: str, seconds: float = 60) -> None:
        end = time.time() + seconds
        while not ready():
            if time.time() > end:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.3)

    def stop(self) -> None:
        for p in reversed(self.processes):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.processes):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.created_run_dir:  # slurmd's configuration cache (configless mode)
            shutil.rmtree(SLURMD_CACHE, ignore_errors=True)
        say(f"stopped pids {[p.pid for p in self.processes]}")


def munge_answers() -> bool:
    """Whether a munged answers on the default socket (a credential encodes and decodes)."""
    encode = subprocess.run(["munge", "-n"], capture_output=True)
    return encode.returncode == 0 and subprocess.run(["unmunge"], input=encode.stdout,
                                                     capture_output=True).returncode == 0


def snakemake(workdir: Path, config: Path, env: dict, *extra: str) -> subprocess.Popen:
    cmd = ["timeout", "-s", "INT", "-k", "15", str(TIMEOUT), sys.executable, "-m", "snakemake", "evaluation",
           "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile", str(config),
           *extra]
    return subprocess.Popen(cmd, env=env, stdout=open(workdir / "snakemake.out", "w"),  # noqa: SIM115
                            stderr=subprocess.STDOUT)


def finish(run: subprocess.Popen, workdir: Path, what: str) -> None:
    if run.wait() != 0:
        print((workdir / "snakemake.out").read_text()[-6000:])
        raise RuntimeError(f"{what} failed with exit status {run.returncode}")


def cancel_one_running_job(env: dict, run: subprocess.Popen, seconds: float = 240) -> str:
    """``scancel`` the first running job of the workflow; return its id."""
    end = time.time() + seconds
    while time.time() < end and run.poll() is None:
        out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i %k"], env=env, capture_output=True,
                             text=True).stdout.split("\n")
        jobs = [line.split()[0] for line in out if "explain" in line or "score" in line]
        if jobs:
            time.sleep(1.0)  # let it start its work
            subprocess.run(["scancel", jobs[0]], env=env, check=True)
            say(f"scancel {jobs[0]}")
            return jobs[0]
        time.sleep(0.3)
    raise RuntimeError("no running explain/score job to cancel")


def provenance_records(results: Path) -> dict[Path, dict]:
    """Every provenance record under ``results`` (sidecars, and ``provenance`` inside metrics.json)."""
    records = {}
    for path in results.rglob("*.json"):
        if path.name == "config.json":
            continue
        record = json.loads(path.read_text())
        records[path] = record.get("provenance", record)
    return records


@pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))
def test_ci_configuration_through_slurm_with_a_cancelled_job():
    start = time.time()
    install()
    base = Path(tempfile.mkdtemp(prefix="wam-slurm-"))
    config = yaml.safe_load((ROOT / "workflow" / "config" / "ci.yaml").read_text())
    config["resources"] = str(base / "resources")
    config_file = base / "ci.yaml"
    config_file.write_text(yaml.safe_dump(config))
    local, cluster_dir = base / "local", base / "slurm"
    local.mkdir()
    cluster_dir.mkdir()
    cluster = Cluster(base)
    run = None
    try:
        say("reference run with --cores 2")
        finish(snakemake(local, config_file, os.environ, "--cores", "2"), local, "local run")
        cluster.start()
        say("run through SLURM")
        run = snakemake(cluster_dir, config_file, cluster.env, "--workflow-profile",
                        str(ROOT / "workflow" / "profiles" / "slurm"), *SITE_RESOURCES)
        cancelled = cancel_one_running_job(cluster.env, run)
        finish(run, cluster_dir, "SLURM run")
        log = (cluster_dir / "snakemake.out").read_text()
        assert cancelled in log, f"Snakemake never reported the cancelled job {cancelled}"

        records = provenance_records(cluster_dir / "results" / config["name"])
        job_ids = sorted({r.get("slurm_job_id") for r in records.values()}, key=lambda j: int(j or -1))
        assert records and None not in job_ids, f"outputs made outside SLURM: {job_ids}"
        results = cluster_dir / "results" / config["name"]
        for table in sorted((local / "results" / config["name"] / "tables").glob("*.csv")):
            assert table.read_bytes() == (results / "tables" / table.name).read_bytes(), f"{table.name} differs"
        say(f"PASSED: {len(records)} provenance records from {len(job_ids)} SLURM jobs "
            f"({', '.join(map(str, job_ids))}); job {cancelled} cancelled and retried; tables identical to the "
            f"local run; {time.time() - start:.0f} s in all")
    finally:
        if run is not None and run.poll() is None:  # a failed check: stop the workflow we started
            run.send_signal(signal.SIGINT)
            run.wait(timeout=60)
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
