"""What a sweep is made of: the runs a family expands into, and the row
each finished (or failed) run leaves in the sweep directory.

Sweep directory layout::

    <sweep_dir>/sweep.json               family, archs, seeds, dataset, runs
    <sweep_dir>/runs/<run dir>/          the run's MMEngine work dir
    <sweep_dir>/runs/<run dir>/row.json  its row (ROW_KEYS), once ended
"""
import json
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Dict, Optional, Tuple

from ..engine.errors import SetupError

#: Value name of a family's stock baseline runs.
BASELINE = 'stock'
SWEEP_FILE = 'sweep.json'
ROW_FILE = 'row.json'
RUNS_DIR = 'runs'

#: Keys of a row (row.json); numbers are None for a failed run.
#:
#: - run_id, family, arch, value, seed, baseline, config: the run.
#: - status: 'done' or 'failed'; error: the one-line error, or None.
#: - iters: iterations trained.
#: - mIoU, aAcc (percent, as MMSeg's IoUMetric), IoU: {class: percent}.
#: - params: parameters of the model; gflops: GFLOPs of one forward at
#:   the crop size with the MoE layers as they run (traced).
#: - latency_ms, stock_latency_ms, latency_ratio: tensor-mode forward
#:   latency of the model and of its stock counterpart, timed alternately
#:   in one process (ratio 1.0 for a baseline).
#: - routing: {layer path: {usage_entropy, dominant_share, num_dead,
#:   importance_cv2}} of the final evaluation ({} for a baseline).
#: - routing_stats: path of the run's routing_stats.json relative to the
#:   sweep dir (None for a baseline).
ROW_KEYS = ('run_id', 'family', 'arch', 'value', 'seed', 'baseline',
            'config', 'status', 'error', 'iters', 'mIoU', 'aAcc', 'IoU',
            'params', 'gflops', 'latency_ms', 'stock_latency_ms',
            'latency_ratio', 'routing', 'routing_stats')


@dataclass
class RunSpec:
    """One run of a sweep.

    Attributes:
        family (str): The family's name.
        arch (str): Architecture key (e.g. 'pspnet').
        value (str): The family value's name, or ``BASELINE``.
        seed (int): ``randomness.seed`` of the run.
        config (str): The config file the run starts from: the arch's
            paper-default MoE config (a baseline's stock config is derived
            from it).
        options (dict): The family value's settings: PatchConvMoE
            settings applied to every MoE layer, or ``targets`` (placement);
            see :func:`.family.run_config`.
        needs (str, optional): run_id of a run whose checkpoint this one
            loads (upcycling from the baseline), or None.
    """
    family: str
    arch: str
    value: str
    seed: int
    config: str
    options: Dict[str, object] = field(default_factory=dict)
    needs: Optional[str] = None

    @property
    def baseline(self) -> bool:
        return self.value == BASELINE

    @property
    def run_id(self) -> str:
        """Unique within a sweep; also its directory name under runs/."""
        return f'{self.arch}__{self.value}__seed{self.seed}'

    def work_dir(self, sweep_dir: str) -> str:
        return osp.join(sweep_dir, RUNS_DIR, self.run_id)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> 'RunSpec':
        return cls(**data)


class BrokenRow(SetupError):
    """A row.json that exists but is not a row: cut short (truncated
    JSON), not JSON, not a JSON object, or not readable.

    Attributes:
        path (str): The file.
        reason (str): Why it is not a row, in a few words.
    """

    def __init__(self, path: str, reason: str):
        super().__init__(f'{path}: not a readable row ({reason})')
        self.path = path
        self.reason = reason


def read_row(path: str) -> Optional[dict]:
    """A run's row.json.

    Args:
        path (str): The file.

    Returns:
        dict, optional: The row, or None if there is no such file (the
        run has not ended yet).

    Raises:
        BrokenRow: If the file exists but is no row (cut short while
            written or copied, not a JSON object, not readable).
    """
    try:
        with open(path, encoding='utf-8') as file:
            row = json.load(file)
    except FileNotFoundError:
        return None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise BrokenRow(path, f'cut short or not JSON: {exc}') from exc
    except OSError as exc:
        raise BrokenRow(path, exc.strerror or type(exc).__name__) from exc
    if not isinstance(row, dict):
        raise BrokenRow(path, f'a JSON {type(row).__name__}, not an object')
    return row


def parse_run_id(run_id: str) -> Optional[Tuple[str, str, int]]:
    """(arch, value, seed) of a :attr:`RunSpec.run_id`, or None if
    ``run_id`` is not one (value names hold no ``__``)."""
    head, sep, seed = str(run_id).rpartition('__seed')
    arch, mid, value = head.rpartition('__')
    if not (sep and mid and arch and value) or not seed.lstrip('-').isdigit():
        return None
    return arch, value, int(seed)
