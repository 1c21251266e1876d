"""Where a sweep's runs execute: on this machine through a process pool
(``concurrent.futures``, each run in a fresh process, at most ``jobs`` at
once) or on a Slurm cluster through submitit (one job per run, job arrays
of at most ``jobs`` running at once, each job free to use several GPUs
through MMEngine's Slurm launcher).

Runs that start from another run's checkpoint (``RunSpec.needs``) wait for
it: locally they are submitted once it has ended, on Slurm with an
``afterok`` dependency.
"""
import multiprocessing
import os
import os.path as osp
import sys
import time
from concurrent.futures import (FIRST_COMPLETED, Future, ProcessPoolExecutor,
                                wait)
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from ..engine.progress_file import read_progress
from .run import (broken_row, finished_row, record_failure, row_path,
                  run_one, write_row)
from .spec import BrokenRow, RunSpec, read_row

#: Seconds between looks at the runs, and at least between two progress
#: lines (a finished run is always said at once).
POLL_SECONDS = 10.0
PRINT_SECONDS = 60.0


def ended_row(spec: RunSpec, sweep_dir: str) -> Optional[dict]:
    """The row a run left, or None if it left none or one that cannot be
    read (the caller records the run as failed, which replaces it)."""
    try:
        return read_row(row_path(spec, sweep_dir))
    except BrokenRow:
        return None


def say_broken(specs: List[RunSpec], sweep_dir: str,
               print_fn: Callable[[str], None] = print) -> List[str]:
    """Say which of the runs about to run have a row.json that cannot be
    read: they run again (resuming from their last checkpoint) and write a
    new row, instead of being taken as finished or as never started.

    Returns:
        list[str]: Their run_ids.
    """
    found = []
    for spec in specs:
        broken = broken_row(spec, sweep_dir)
        if broken is not None:
            print_fn(f'{spec.run_id}: {broken}; running it again (it resumes '
                     'from its last checkpoint)')
            found.append(spec.run_id)
    return found


def _worker(spec: dict, sweep_dir: str, cfg_options: Optional[dict]) -> dict:
    """Entry point of a local worker process: the run's output goes to
    ``run.log`` in its work dir (the sweep prints progress instead)."""
    run = RunSpec.from_dict(spec)
    work_dir = run.work_dir(sweep_dir)
    os.makedirs(work_dir, exist_ok=True)
    log = open(osp.join(work_dir, 'run.log'), 'a', encoding='utf-8')
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    return run_one(run, sweep_dir, cfg_options)


@dataclass
class Progress:
    """Prints runs done / total and each running run's iteration."""
    total: int
    sweep_dir: str
    print_fn: Callable[[str], None] = print
    done: int = 0
    failed: int = 0
    _last: str = field(default='', repr=False)
    _last_time: float = field(default=0.0, repr=False)

    def finished(self, row: dict) -> None:
        self.done += 1
        self.failed += row.get('status') != 'done'
        result = (f"mIoU {row['mIoU']:.2f}" if row.get('status') == 'done'
                  and row.get('mIoU') is not None else
                  f"FAILED: {row.get('error')}")
        self.print_fn(f'[{self.done}/{self.total}] {row["run_id"]}: '
                      f'{result}')

    def running(self, specs: List[RunSpec], force: bool = False) -> None:
        parts = []
        for spec in specs:
            state = read_progress(spec.work_dir(self.sweep_dir))
            if state.get('stage') == 'train':
                parts.append(f'{spec.run_id} iter {state["iter"]}/'
                             f'{state["max_iters"]}')
            elif state:
                parts.append(f'{spec.run_id} {state["stage"]}')
            else:
                parts.append(f'{spec.run_id} starting')
        line = (f'runs {self.done}/{self.total} done'
                + (f' ({self.failed} failed)' if self.failed else '')
                + (' | running: ' + ', '.join(parts) if parts else ''))
        now = time.monotonic()
        if line != self._last and (force or now - self._last_time
                                   >= PRINT_SECONDS):
            self.print_fn(line)
            self._last, self._last_time = line, now


def run_local(specs: List[RunSpec], sweep_dir: str,
              cfg_options: Optional[dict] = None, jobs: int = 1,
              progress: Optional[Progress] = None) -> List[dict]:
    """Run the specs on this machine, at most ``jobs`` at once, each in a
    fresh process; finished runs are skipped.

    Returns:
        list[dict]: The rows, in the order of ``specs``.
    """
    progress = progress or Progress(len(specs), sweep_dir)
    rows: Dict[str, dict] = {}
    waiting: List[RunSpec] = []
    for spec in specs:
        row = finished_row(spec, sweep_dir)
        if row is not None:
            rows[spec.run_id] = row
            progress.done += 1
        else:
            waiting.append(spec)
    if rows:
        progress.print_fn(f'{len(rows)} of {len(specs)} runs finished '
                          'before; skipped')
    say_broken(waiting, sweep_dir, progress.print_fn)
    context = multiprocessing.get_context('spawn')
    running: Dict[Future, RunSpec] = {}
    started: Dict[str, float] = {}
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=context,
                             max_tasks_per_child=1) as pool:
        while waiting or running:
            for spec in [s for s in waiting if _ready(s, rows)]:
                if len(running) >= max(1, jobs):
                    break
                waiting.remove(spec)
                future = pool.submit(_worker, spec.to_dict(), sweep_dir,
                                     cfg_options)
                running[future] = spec
                started[spec.run_id] = time.perf_counter()
            if not running:  # every waiting run needs a failed run
                for spec in waiting:
                    rows[spec.run_id] = _unmet(spec, sweep_dir)
                    progress.finished(rows[spec.run_id])
                break
            progress.running(list(running.values()))
            ended, _ = wait(list(running), timeout=POLL_SECONDS,
                            return_when=FIRST_COMPLETED)
            for future in ended:
                spec = running.pop(future)
                row = _result(future, spec, sweep_dir)
                _add_wall_time(row, spec, sweep_dir,
                               time.perf_counter() - started[spec.run_id])
                rows[spec.run_id] = row
                progress.finished(row)
    return [rows[spec.run_id] for spec in specs]


def _add_wall_time(row: dict, spec: RunSpec, sweep_dir: str,
                   seconds: float) -> None:
    """Record the run's wall time, process start included, in its row."""
    if row.get('status') == 'done' and isinstance(row.get('seconds'), dict):
        row['seconds']['wall'] = seconds
        write_row(spec, sweep_dir, row)


def _ready(spec: RunSpec, rows: Dict[str, dict]) -> bool:
    """Whether the run it needs (if any) has finished successfully; a
    failed dependency leaves it waiting (recorded by :func:`_unmet`)."""
    if spec.needs is None:
        return True
    row = rows.get(spec.needs)
    return row is not None and row.get('status') == 'done'


def _unmet(spec: RunSpec, sweep_dir: str) -> dict:
    return record_failure(
        spec, sweep_dir, f'SetupError: run {spec.needs}, whose checkpoint '
        'this run starts from, did not finish')


def _result(future: Future, spec: RunSpec, sweep_dir: str) -> dict:
    """A worker's row; a worker that died (killed, out of memory) is
    recorded as a failed run."""
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001  (the process itself failed)
        row = ended_row(spec, sweep_dir)
        return row if row is not None else record_failure(
            spec, sweep_dir,
            f'{type(exc).__name__}: worker process ended: {exc}')


@dataclass
class SlurmSettings:
    """Slurm resources of each run (one job per run).

    Attributes:
        partition (str, optional): ``--partition``.
        gpus (int): GPUs per run (one task per GPU; MMEngine's Slurm
            launcher makes them one distributed run); 0 for one CPU task.
            Default: 1.
        nodes (int): Nodes per run. Default: 1.
        cpus_per_task (int): CPUs per task. Default: 4.
        timeout_min (int): Time limit of a run, minutes. Default: 1440.
        extra (dict): Further sbatch options (submitit's
            ``slurm_additional_parameters``).
    """
    partition: Optional[str] = None
    gpus: int = 1
    nodes: int = 1
    cpus_per_task: int = 4
    timeout_min: int = 1440
    extra: Dict[str, object] = field(default_factory=dict)


def slurm_task(spec: dict, sweep_dir: str,
               cfg_options: Optional[dict]) -> dict:
    """What each Slurm task runs: the run, distributed over the job's
    tasks when it has several (MMEngine's 'slurm' launcher reads Slurm's
    environment)."""
    tasks = int(os.environ.get('SLURM_NTASKS', '1'))
    return run_one(RunSpec.from_dict(spec), sweep_dir, cfg_options,
                   launcher='slurm' if tasks > 1 else 'none')


def submit_slurm(specs: List[RunSpec], sweep_dir: str,
                 cfg_options: Optional[dict], settings: SlurmSettings,
                 jobs: int = 256,
                 print_fn: Callable[[str], None] = print
                 ) -> Dict[str, object]:
    """Submit the unfinished specs as Slurm jobs through submitit (runs
    with a row.json that cannot be read are said and run again).

    Returns:
        dict: run_id -> submitit Job.
    """
    import submitit
    todo = [s for s in specs if finished_row(s, sweep_dir) is None]
    say_broken(todo, sweep_dir, print_fn)
    executor = submitit.AutoExecutor(
        folder=osp.join(sweep_dir, 'slurm', '%j'), cluster='slurm')
    family = specs[0].family if specs else 'sweep'
    executor.update_parameters(
        name=f'sweep-{family}', timeout_min=settings.timeout_min,
        nodes=settings.nodes, tasks_per_node=max(1, settings.gpus),
        cpus_per_task=settings.cpus_per_task,
        slurm_array_parallelism=jobs,
        slurm_additional_parameters=dict(settings.extra))
    if settings.gpus > 0:
        executor.update_parameters(gpus_per_node=settings.gpus)
    if settings.partition:
        executor.update_parameters(slurm_partition=settings.partition)
    submitted: Dict[str, object] = {}
    first = [s for s in todo if not s.needs or s.needs not in
             {t.run_id for t in todo}]
    with executor.batch():
        batch = [executor.submit(slurm_task, s.to_dict(), sweep_dir,
                                 cfg_options) for s in first]
    submitted.update({s.run_id: job for s, job in zip(first, batch)})
    for spec in [s for s in todo if s.run_id not in submitted]:
        needed = submitted[spec.needs]
        executor.update_parameters(slurm_additional_parameters=dict(
            settings.extra, dependency=f'afterok:{needed.job_id}'))
        submitted[spec.run_id] = executor.submit(slurm_task, spec.to_dict(),
                                                 sweep_dir, cfg_options)
    return submitted


def wait_slurm(jobs: Dict[str, object], specs: List[RunSpec],
               sweep_dir: str, progress: Progress) -> List[dict]:
    """Wait for submitted jobs, showing progress; rows in spec order."""
    by_id = {s.run_id: s for s in specs}
    pending = dict(jobs)
    while pending:
        for run_id, job in list(pending.items()):
            if job.done():
                del pending[run_id]
                spec = by_id[run_id]
                row = ended_row(spec, sweep_dir)
                if row is None:
                    row = record_failure(
                        spec, sweep_dir, f'Slurm job {job.job_id} ended in '
                        f'state {job.state} without a readable row')
                progress.finished(row)
        progress.running([by_id[r] for r in pending])
        if pending:
            time.sleep(POLL_SECONDS)
    return [ended_row(s, sweep_dir) or {} for s in specs]
