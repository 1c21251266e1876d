"""A real one-node Slurm cluster on this machine (Debian's slurmctld,
slurmd and munge), started for the tests that need one and stopped after;
skipped where those packages are not installed (.ci/run installs them)."""
import os
import shutil
import socket
import subprocess
import time

import pytest

DAEMONS = ('slurmctld', 'slurmd', 'munged')

SLURM_CONF = '''ClusterName=moesweeptest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
SlurmUser=root
SlurmdUser=root
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmdSpoolDir={dir}/spool
StateSaveLocation={dir}/state
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _start_munge() -> None:
    """munged, unless one answers already."""
    if subprocess.run(['munge', '-n'], capture_output=True).returncode == 0:
        return
    os.makedirs('/run/munge', exist_ok=True)
    shutil.chown('/run/munge', 'munge', 'munge')
    subprocess.run(['munged', '--force'], capture_output=True, check=True)
    for _ in range(50):
        if subprocess.run(['munge', '-n'],
                          capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError('munged did not start')


@pytest.fixture(scope='session')
def slurm_cluster(tmp_path_factory):
    """SLURM_CONF of a running one-node cluster (debug partition)."""
    if any(shutil.which(name) is None for name in DAEMONS + ('sbatch', )):
        pytest.skip("needs Debian's slurmctld, slurmd, slurm-client and "
                    'munge (.ci/run installs them)')
    if os.geteuid() != 0:
        pytest.skip('starting Slurm daemons needs root')
    folder = tmp_path_factory.mktemp('slurm')
    for sub in ('state', 'spool'):
        (folder / sub).mkdir()
    conf = folder / 'slurm.conf'
    conf.write_text(SLURM_CONF.format(
        host=socket.gethostname().split('.')[0], dir=folder,
        ctld_port=_free_port(), slurmd_port=_free_port(),
        cpus=os.cpu_count() or 1))
    env = dict(os.environ, SLURM_CONF=str(conf))
    _start_munge()
    subprocess.run(['slurmctld', '-f', str(conf)], env=env, check=True)
    subprocess.run(['slurmd', '-f', str(conf)], env=env, check=True)
    try:
        for _ in range(100):
            info = subprocess.run(['sinfo', '-h', '-o', '%t'], env=env,
                                  capture_output=True, text=True)
            if info.stdout.strip() == 'idle':
                break
            time.sleep(0.2)
        else:
            pytest.skip(f'the Slurm node did not come up: {info.stdout} '
                        f'{info.stderr}')
        yield str(conf)
    finally:
        for name in ('slurmd', 'slurmctld'):
            pid_file = folder / f'{name}.pid'
            if pid_file.is_file():
                subprocess.run(['kill', pid_file.read_text().strip()])
