"""A real single-node SLURM cluster on localhost for the tests: munged, slurmctld and slurmd
from Debian's `munge` and `slurm-wlm`, with every file in one folder and free ports.

Usage:
  with SlurmCluster(tmp_dir) as cluster:      # started, the node idle; stopped on leaving
      env = cluster.env                       # SLURM_CONF for sbatch, squeue, scontrol, ...
  python tests/slurm_cluster.py DIR           # by hand: start it, print SLURM_CONF; Ctrl-C or kill stops it

The node is CPU-only (no GPUs), with more CPUs than the machine has
(SlurmdParameters=config_overrides), so that a few one-CPU jobs run at once; ProctrackType
linuxproc and TaskPlugin none need no cgroups. There is no accounting (no slurmdbd, so no
sacct). cred_expire is a few seconds, so a requeued job may start again at once (SLURM's
default holds it for 120 s); KillWait is short, so a cancelled job is gone within seconds.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

NODE = "w2v2node"
PARTITION = "debug"
CPUS = 4
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")


def available() -> bool:
    """munge's and SLURM's programs are on PATH (or in /usr/sbin)."""
    return all(_which(name) for name in DAEMONS)


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def slurm_conf(root: Path, munge_socket: Path, ctld_port: int, slurmd_port: int) -> str:
    host = socket.gethostname().split(".")[0]
    return "\n".join([
        "ClusterName=w2v2test", f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}", f"SlurmdPort={slurmd_port}",
        "SlurmUser=root", "SlurmdUser=root", "AuthType=auth/munge", "CredType=cred/munge",
        f"AuthInfo=socket={munge_socket},cred_expire=5",
        f"StateSaveLocation={root}/state", f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/slurmctld.pid", f"SlurmdPidFile={root}/slurmd.pid",
        f"SlurmctldLogFile={root}/slurmctld.log", f"SlurmdLogFile={root}/slurmd.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "SlurmdParameters=config_overrides", "ReturnToService=2", "JobRequeue=1",
        "KillWait=3", "MinJobAge=300", "SlurmctldTimeout=30", "SlurmdTimeout=30",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=sched_interval=1,bf_interval=1", "SlurmctldDebug=info", "SlurmdDebug=info",
        f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs={CPUS} RealMemory=4000 State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP", ""])


class SlurmCluster:
    """munged + slurmctld + slurmd in `root`, started by start() and stopped by stop()."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.procs: list[subprocess.Popen] = []

    def start(self, timeout: float = 60) -> "SlurmCluster":
        for sub in ("state", "spool", "munge"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        munge = self.root / "munge"
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        sock = munge / "munge.socket"
        self._daemon("munged", "--foreground", "--force", f"--socket={sock}",
                     f"--key-file={key}", f"--pid-file={munge}/munged.pid",
                     f"--log-file={munge}/munged.log", f"--seed-file={munge}/munged.seed")
        self._wait(lambda: sock.exists(), timeout, "munged made no socket")
        self.conf.write_text(slurm_conf(self.root, sock, *_free_ports(2)))
        self._daemon("slurmctld", "-D", "-i", "-f", str(self.conf))
        self._daemon("slurmd", "-D", "-N", NODE, "-f", str(self.conf))
        self._wait(self.idle, timeout, "the node did not become idle")
        return self

    def _daemon(self, name: str, *args: str) -> None:
        log = open(self.root / f"{name}.out", "ab")
        self.procs.append(subprocess.Popen([_which(name), *args], stdout=log,
                                           stderr=subprocess.STDOUT, env=self.env,
                                           start_new_session=True))

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [p.args[0] for p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(path.read_text(errors="replace")[-2000:]
                                 for path in sorted(self.root.glob("*.log")))
                self.stop()
                raise RuntimeError(f"SLURM test cluster: {what} (exited: {dead})\n{logs}")
            time.sleep(0.3)

    def idle(self) -> bool:
        """sinfo shows the node idle."""
        proc = self.run("sinfo", "-h", "-n", NODE, "-o", "%t", check=False)
        return proc.returncode == 0 and proc.stdout.strip() == "idle"

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        """A SLURM client command against this cluster (sbatch, squeue, scontrol, ...)."""
        return subprocess.run([_which(command[0]), *command[1:]], env=self.env, text=True,
                              capture_output=True, check=check, timeout=60)

    def stop(self) -> None:
        """Cancel every job, then stop the daemons (SIGTERM, then SIGKILL after 10 s)."""
        if self.procs and all(p.poll() is None for p in self.procs):
            self.run("scancel", "--full", "--user=root", check=False)
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs = []

    def __enter__(self) -> "SlurmCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # `kill PID` stops the daemons too
    with SlurmCluster(Path(sys.argv[1]).resolve()) as cluster:
        print(f"export SLURM_CONF={cluster.conf}  (Ctrl-C or kill {os.getpid()} stops the "
              "cluster)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
