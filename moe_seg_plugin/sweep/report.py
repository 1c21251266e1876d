"""The paper's kind of table from a sweep directory.

A sweep directory (see :mod:`.spec`) holds ``sweep.json`` and one
``runs/<run_id>/row.json`` per ended run. This module reads them and makes,
per architecture and family value (the stock baseline first), the rows of
``table.md`` / ``table.csv``: runs done, failed and broken (a row.json
that cannot be read), mIoU mean ± std over seeds, the paired difference
to the stock baseline with its spread, params +%, GFLOPs +%, latency
ratio and the final routing balance (only values the sweep ran).
:mod:`.outputs` writes them with the plots of :mod:`.plots`.

The seed-spread rule (:data:`SPREAD_RULE`, :meth:`Difference.inside_spread`)
decides whether a difference is a finding; the findings report
(:mod:`.findings`) uses the same rule.
"""
import csv
import json
import math
import os.path as osp
from dataclasses import dataclass, field
from statistics import mean, stdev
from typing import Dict, List, Optional, Sequence, Tuple

from ..engine.errors import SetupError
from .spec import (BASELINE, ROW_FILE, RUNS_DIR, SWEEP_FILE, BrokenRow,
                   parse_run_id, read_row)

#: Keys sweep.json must have.
SWEEP_KEYS = ('family', 'archs', 'seeds', 'values', 'runs')
#: Keys a row must have for the report to place it.
PLACE_KEYS = ('run_id', 'arch', 'value', 'seed', 'status')
#: Routing statistics of a row, averaged over its MoE layers.
ROUTING_KEYS = ('usage_entropy', 'dominant_share', 'num_dead',
                'importance_cv2')
#: The seed-spread rule, as the tables and findings.md state it.
SPREAD_RULE = (
    'Differences are paired by seed: d_s = x(value, seed s) - x(reference, '
    'seed s) over the seeds where both runs finished, shown as mean ± '
    'sample std (ddof=1) of the d_s. A difference is **inside the seed '
    'spread** when |mean d| <= std d: it is marked "≈ ... (noise)" and is '
    'never a finding. With fewer than 2 paired seeds the spread is unknown '
    '("n/a: needs >= 2 seeds") and the difference is not a finding either.')
NOISE_MARK = '≈'
CSV_COLUMNS = ('arch', 'value', 'baseline', 'runs_expected', 'runs_done',
               'runs_failed', 'runs_broken', 'miou_mean', 'miou_std',
               'miou_seeds', 'diff_mean', 'diff_std', 'diff_seeds',
               'inside_spread', 'params', 'params_pct', 'gflops', 'gflops_pct',
               'latency_ratio', 'usage_entropy', 'dominant_share',
               'num_dead', 'importance_cv2', 'moe_layers')


@dataclass
class Difference:
    """A paired difference over seeds (see :data:`SPREAD_RULE`).

    Attributes:
        mean (float, optional): Mean of the per-seed differences.
        std (float, optional): Their sample std (None below 2 seeds).
        seeds (int): Seeds where both sides finished.
    """
    mean: Optional[float]
    std: Optional[float]
    seeds: int

    @property
    def inside_spread(self) -> Optional[bool]:
        """True if |mean| <= std, False if outside, None below 2 seeds."""
        if self.seeds < 2 or self.mean is None or self.std is None:
            return None
        return abs(self.mean) <= self.std

    def text(self, digits: int = 2) -> str:
        """``+1.20 ± 0.30``, ``≈ +0.10 ± 0.40 (noise)`` or ``n/a``."""
        if self.mean is None:
            return 'n/a'
        if self.std is None:
            return f'{self.mean:+.{digits}f} (n/a: needs >= 2 seeds)'
        body = f'{self.mean:+.{digits}f} ± {self.std:.{digits}f}'
        return f'{NOISE_MARK} {body} (noise)' if self.inside_spread else body


@dataclass
class TableRow:
    """One line of the table: an architecture and a family value.

    Attributes:
        arch, value (str): The line's architecture and value.
        baseline (bool): Whether it is the stock baseline.
        expected, done, failed (int): Runs the sweep holds, finished
            with a finite mIoU, failed or diverged.
        miou_mean, miou_std (float, optional): mIoU over finished seeds.
        miou_seeds (int): Finished seeds.
        diff (Difference): Paired mIoU difference to the stock baseline.
        params, gflops (float, optional): Means over finished runs.
        params_pct, gflops_pct (float, optional): Percent over stock.
        latency_ratio (float, optional): Mean latency ratio vs stock.
        routing (dict): Means over seeds of :data:`ROUTING_KEYS`.
        moe_layers (int): Most MoE layers a run of the value reported.
        failures (list): (run_id, error line) of failed runs.
        broken (list): (run_id, why) of runs whose row.json cannot be
            read (neither done nor failed; left out like failed runs).
    """
    arch: str
    value: str
    baseline: bool
    expected: int
    done: int
    failed: int
    miou_mean: Optional[float]
    miou_std: Optional[float]
    miou_seeds: int
    diff: Difference
    params: Optional[float] = None
    gflops: Optional[float] = None
    params_pct: Optional[float] = None
    gflops_pct: Optional[float] = None
    latency_ratio: Optional[float] = None
    routing: Dict[str, Optional[float]] = field(default_factory=dict)
    moe_layers: int = 0
    failures: List[Tuple[str, str]] = field(default_factory=list)
    broken: List[Tuple[str, str]] = field(default_factory=list)

    def csv_row(self) -> Dict[str, object]:
        """The row as CSV cells (numbers, empty where unknown)."""
        inside = self.diff.inside_spread
        cells = dict(
            arch=self.arch, value=self.value, baseline=int(self.baseline),
            runs_expected=self.expected, runs_done=self.done,
            runs_failed=self.failed, runs_broken=len(self.broken),
            miou_mean=self.miou_mean, miou_std=self.miou_std,
            miou_seeds=self.miou_seeds,
            diff_mean=self.diff.mean, diff_std=self.diff.std,
            diff_seeds=self.diff.seeds,
            inside_spread='' if inside is None else int(inside),
            params=self.params, params_pct=self.params_pct,
            gflops=self.gflops, gflops_pct=self.gflops_pct,
            latency_ratio=self.latency_ratio, moe_layers=self.moe_layers)
        cells.update({key: self.routing.get(key) for key in ROUTING_KEYS})
        return {key: '' if cells[key] is None else cells[key]
                for key in CSV_COLUMNS}


# Reading.
@dataclass
class SweepRuns:
    """What a sweep directory holds.

    Attributes:
        meta (dict): sweep.json.
        rows (list[dict]): The rows of its ended runs.
        broken (dict): {run_id: BrokenRow} of its runs whose row.json
            exists but cannot be read (cut short, not JSON).
    """
    meta: dict
    rows: List[dict]
    broken: Dict[str, BrokenRow] = field(default_factory=dict)


def load_runs(sweep_dir: str) -> SweepRuns:
    """The sweep's description, the rows of its ended runs and its runs
    whose row cannot be read; runs without a row.json yet (running, not
    started) are left out.

    Args:
        sweep_dir (str): A directory written by tools/analysis_tools/sweep.py.

    Returns:
        SweepRuns: The sweep's runs (only those sweep.json lists).

    Raises:
        SetupError: If ``sweep_dir`` is not a sweep directory, its
            sweep.json is broken, or a row does not belong to the sweep.
    """
    meta = _read_meta(sweep_dir)
    found = SweepRuns(meta, [])
    for run_id in meta['runs']:
        path = osp.join(sweep_dir, RUNS_DIR, str(run_id), ROW_FILE)
        try:
            row = read_row(path)
        except BrokenRow as exc:
            found.broken[str(run_id)] = exc
            continue
        if row is not None:
            found.rows.append(_checked_row(row, path, meta))
    return found


def load_sweep(sweep_dir: str) -> Tuple[dict, List[dict]]:
    """The sweep's description and the rows of its ended runs (runs whose
    row cannot be read left out: see :func:`load_runs`).

    Returns:
        tuple: (sweep.json as a dict, list of row dicts).
    """
    found = load_runs(sweep_dir)
    return found.meta, found.rows


def check_ended(sweep_dir: str, found: SweepRuns) -> None:
    """Refuse a sweep none of whose runs has a readable row yet.

    Raises:
        SetupError: Naming the first unreadable row.json, if any, else
            saying that no run has ended.
    """
    if found.rows:
        return
    if found.broken:
        first = next(iter(found.broken.values()))
        more = len(found.broken) - 1
        raise SetupError(
            f'{sweep_dir!r}: no run has a readable {ROW_FILE}: {first}'
            + (f' (and {more} more)' if more else '')
            + '; run tools/analysis_tools/sweep.py on it again to re-run them')
    raise SetupError(
        f'{sweep_dir!r}: no run has ended yet (0 of '
        f'{len(found.meta["runs"])} runs have a {ROW_FILE}); run '
        f'tools/analysis_tools/sweep.py on it first')


def broken_summary(sweep_dir: str, found: SweepRuns,
                   table_path: str) -> Optional[str]:
    """One line on a sweep's runs whose row cannot be read, or None.

    Args:
        sweep_dir (str): The sweep directory.
        found (SweepRuns): Its runs.
        table_path (str): The table.md that lists them as broken.
    """
    if not found.broken:
        return None
    first = next(iter(found.broken.values()))
    count = len(found.broken)
    return (f'sweep {sweep_dir!r}: {count} run(s) with a {ROW_FILE} that '
            f'cannot be read, listed as broken in {table_path} and left '
            f'out of the tables and findings: {first}'
            + (f' (and {count - 1} more)' if count > 1 else '')
            + '; run tools/analysis_tools/sweep.py on the sweep again to '
            're-run them')


def _read_meta(sweep_dir: str) -> dict:
    """sweep.json of ``sweep_dir``, checked for the keys the report uses."""
    path = osp.join(sweep_dir, SWEEP_FILE)
    if not osp.isfile(path):
        what = ('it does not exist' if not osp.lexists(sweep_dir) else
                'it is a file' if not osp.isdir(sweep_dir) else
                f'no {SWEEP_FILE}')
        raise SetupError(f'{sweep_dir!r} is not a sweep directory ({what}; '
                         f'give a folder written by '
                         f'tools/analysis_tools/sweep.py)')
    try:
        with open(path, encoding='utf-8') as file:
            meta = json.load(file)
    except (OSError, ValueError) as exc:
        raise SetupError(f'{path}: not readable JSON ({exc})') from exc
    missing = [key for key in SWEEP_KEYS
               if not isinstance(meta, dict) or key not in meta]
    if missing:
        raise SetupError(f'{path}: missing keys {missing}; was it written '
                         f'by tools/analysis_tools/sweep.py?')
    return meta


def _checked_row(row: dict, path: str, meta: dict) -> dict:
    """``row`` if it has the keys the report needs and the sweep's
    family."""
    missing = [key for key in PLACE_KEYS
               if not isinstance(row, dict) or key not in row]
    if missing:
        raise SetupError(f'{path}: row without keys {missing}')
    family = row.get('family', meta['family'])
    if family != meta['family']:
        raise SetupError(f'{path}: a row of family {family!r} in a sweep of '
                         f'family {meta["family"]!r}')
    return row


def read_routing_stats(sweep_dir: str, row: dict) -> List[dict]:
    """The entries of a run's routing_stats.json (one JSON object a line;
    lines that do not parse are skipped).

    Args:
        sweep_dir (str): The sweep directory.
        row (dict): The run's row; ``routing_stats`` is relative to
            ``sweep_dir``.

    Returns:
        list[dict]: The entries in file order ([] without a file).
    """
    name = row.get('routing_stats')
    path = osp.join(sweep_dir, name) if name else None
    if path is None or not osp.isfile(path):
        return []
    entries = []
    with open(path, encoding='utf-8') as file:
        for line in file:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(
                    entry.get('layers'), dict):
                entries.append(entry)
    return entries


# Numbers of rows.
def finished(row: dict) -> bool:
    """Whether the run ended with a finite mIoU (a row that counts)."""
    return row.get('status') == 'done' and is_finite_number(row.get('mIoU'))


def is_finite_number(value) -> bool:
    """Whether ``value`` is an int or float (not a bool) and finite."""
    return isinstance(value, (int, float)) and not isinstance(
        value, bool) and math.isfinite(value)


def failure(row: dict) -> str:
    """The one-line reason a row does not count."""
    if row.get('status') != 'done':
        error = str(row.get('error') or 'failed without an error message')
        return error.strip().splitlines()[0] if error.strip() else error
    return f'mIoU is not a finite number ({row.get("mIoU")!r})'


def metric(row: dict, name: str) -> Optional[float]:
    """A number of a row: a top-level key (``mIoU``, ``params``...) or a
    routing statistic averaged over the row's MoE layers.

    Args:
        row (dict): A row.
        name (str): The key.

    Returns:
        float, optional: The number, or None if the row has none.
    """
    if name in ROUTING_KEYS:
        layers = (row.get('routing') or {}).values()
        found = [stats.get(name) for stats in layers
                 if isinstance(stats, dict)]
        found = [float(v) for v in found if is_finite_number(v)]
        return mean(found) if found else None
    value = row.get(name)
    return float(value) if is_finite_number(value) else None


def rows_of(rows: Sequence[dict], arch: str, value: str) -> List[dict]:
    """The rows of one architecture and value, by seed."""
    picked = [r for r in rows if r['arch'] == arch and r['value'] == value]
    return sorted(picked, key=lambda r: r['seed'])


def per_seed(rows: Sequence[dict], arch: str, value: str,
             name: str = 'mIoU') -> Dict[int, float]:
    """{seed: number} over the finished runs of an architecture and value.

    Args:
        rows (sequence[dict]): Rows of a sweep.
        arch, value (str): Which runs.
        name (str): The number (see :func:`metric`). Default: 'mIoU'.

    Returns:
        dict: The runs' numbers by seed (runs without it left out).
    """
    found = {}
    for row in rows_of(rows, arch, value):
        number = metric(row, name) if finished(row) else None
        if number is not None:
            found[row['seed']] = number
    return found


def mean_std(numbers: Sequence[float]) -> Tuple[Optional[float],
                                                 Optional[float]]:
    """(mean, sample std with ddof=1); std is None below 2 numbers, both
    None for none."""
    numbers = list(numbers)
    if not numbers:
        return None, None
    return mean(numbers), (stdev(numbers) if len(numbers) > 1 else None)


def paired(values: Dict[int, float],
           reference: Dict[int, float]) -> Difference:
    """Per-seed differences ``values - reference`` over their common seeds.

    Args:
        values, reference (dict): {seed: number}.

    Returns:
        Difference: Mean and sample std of the differences.
    """
    seeds = sorted(set(values) & set(reference))
    avg, std = mean_std([values[s] - reference[s] for s in seeds])
    return Difference(avg, std, len(seeds))


# The table.
def summarise(rows: Sequence[dict],
              values: Optional[Sequence[str]] = None,
              seeds: Optional[Sequence[int]] = None,
              archs: Optional[Sequence[str]] = None,
              runs: Optional[Sequence[str]] = None,
              broken: Optional[Dict[str, BrokenRow]] = None
              ) -> List[TableRow]:
    """One table row per architecture and value.

    Args:
        rows (sequence[dict]): Rows of a sweep (see :func:`load_sweep`).
        values (sequence[str], optional): The family's values in family
            order (sweep.json); values found only in rows follow them.
        seeds (sequence[int], optional): The sweep's seeds, for the runs
            expected per line when ``runs`` is not given (default: the
            seeds found in the rows).
        archs (sequence[str], optional): Architectures, in order
            (default: as found in the rows).
        runs (sequence[str], optional): The run_ids the sweep holds
            (sweep.json): only values with a run get a line, expecting as
            many runs as it holds of them. Default: every value, expecting
            every seed.
        broken (dict, optional): {run_id: BrokenRow} of runs whose row
            cannot be read (see :func:`load_runs`).

    Returns:
        list[TableRow]: Per architecture, the stock baseline first, then
        the values in family order.

    Raises:
        SetupError: If there are no rows.
    """
    if not rows:
        raise SetupError('no run of the sweep has ended yet: nothing to '
                         'summarise')
    held = _held_runs(runs) if runs is not None else None
    archs = ordered_once(archs or [], [r['arch'] for r in rows])
    order = ordered_once([BASELINE] + list(values or []),
                         [r['value'] for r in rows])
    seeds_expected = len(seeds) if seeds else len({r['seed'] for r in rows})
    table = []
    for arch in archs:
        for value in order:
            if held is not None and (arch, value) not in held and not \
                    rows_of(rows, arch, value):
                continue  # a value this sweep never ran
            run_ids = (held or {}).get((arch, value), [])
            line = _table_row(rows, arch, value, seeds_expected
                              if held is None else len(run_ids))
            line.broken = [(run_id, str(broken[run_id]))
                           for run_id in run_ids if run_id in (broken or {})]
            table.append(line)
    return table


def _held_runs(runs: Sequence[str]) -> Dict[Tuple[str, str], List[str]]:
    """{(arch, value): [run_id]} of a sweep's run_ids (those that are not
    run_ids of :class:`.spec.RunSpec` left out)."""
    held: Dict[Tuple[str, str], List[str]] = {}
    for run_id in runs:
        parsed = parse_run_id(run_id)
        if parsed is not None:
            held.setdefault(parsed[:2], []).append(str(run_id))
    return held


def ordered_once(first: Sequence[str], found: Sequence[str]) -> List[str]:
    """``first`` followed by the items of ``found`` not in it, each once."""
    order = []
    for item in list(first) + list(found):
        if item not in order:
            order.append(item)
    return order


def _table_row(rows: Sequence[dict], arch: str, value: str,
               expected: int) -> TableRow:
    """The table row of one architecture and value."""
    runs = rows_of(rows, arch, value)
    ok = [r for r in runs if finished(r)]
    miou = per_seed(rows, arch, value)
    avg, std = mean_std(list(miou.values()))
    stock = per_seed(rows, arch, BASELINE)
    line = TableRow(
        arch=arch, value=value, baseline=value == BASELINE,
        expected=expected, done=len(ok), failed=len(runs) - len(ok),
        miou_mean=avg, miou_std=std, miou_seeds=len(miou),
        diff=(Difference(None, None, 0) if value == BASELINE else
              paired(miou, stock)),
        params=_mean_of(ok, 'params'), gflops=_mean_of(ok, 'gflops'),
        latency_ratio=_mean_of(ok, 'latency_ratio'),
        routing={key: _mean_of(ok, key) for key in ROUTING_KEYS},
        moe_layers=max([len(r.get('routing') or {}) for r in ok] or [0]),
        failures=[(r['run_id'], failure(r)) for r in runs
                  if not finished(r)])
    stock_ok = [r for r in rows_of(rows, arch, BASELINE) if finished(r)]
    line.params_pct = _percent(line.params, _mean_of(stock_ok, 'params'))
    line.gflops_pct = _percent(line.gflops, _mean_of(stock_ok, 'gflops'))
    return line


def _mean_of(rows: Sequence[dict], name: str) -> Optional[float]:
    found = [metric(r, name) for r in rows]
    found = [v for v in found if v is not None]
    return mean(found) if found else None


def _percent(value: Optional[float],
             reference: Optional[float]) -> Optional[float]:
    if value is None or not reference:
        return None
    return 100.0 * (value / reference - 1.0)


# Markdown and CSV.
COLUMNS = ('value', 'runs', 'mIoU (mean ± std)', 'Δ mIoU vs stock (paired)',
           'params +%', 'GFLOPs +%', 'latency ×', 'usage entropy',
           'dominant share', 'dead experts', 'importance CV²')
COLUMN_NOTES = (
    '**runs**: finished / runs the sweep holds (one per seed), and failed '
    'or diverged runs and broken runs (row.json unreadable) (listed '
    'below; left out of every mean).',
    '**mIoU**: percent (MMSeg IoUMetric), mean ± sample std (ddof=1) over '
    'the finished seeds; "n/a" for the std with one seed.',
    '**Δ mIoU vs stock**: ' + SPREAD_RULE,
    '**params +% / GFLOPs +%**: mean over finished runs, relative to the '
    'stock baseline of the same architecture (GFLOPs of one forward at the '
    'crop size, with the MoE layers as they run).',
    '**latency ×**: mean over finished runs of the run\'s forward latency '
    'divided by its stock counterpart\'s, timed alternately in one process.',
    '**usage entropy** (H(f)/log N: 1 balanced, 0 collapsed), **dominant '
    'share** (max f_i), **dead experts** (usage < 1/(10N)), **importance '
    'CV²** (of the gate mass): the final evaluation\'s routing statistics, '
    'mean over seeds; "—" for the stock baseline (no MoE layer).',
)


def _number(value: Optional[float], digits: int = 2, sign: bool = False,
            suffix: str = '') -> str:
    if value is None:
        return 'n/a'
    return f'{value:{"+" if sign else ""}.{digits}f}{suffix}'


def _cells(line: TableRow) -> List[str]:
    """The Markdown cells of one table row."""
    runs = f'{line.done}/{line.expected}'
    if line.failed:
        runs += f', {line.failed} failed'
    if line.broken:
        runs += f', {len(line.broken)} broken'
    miou = _number(line.miou_mean)
    if line.miou_mean is not None:
        miou += f' ± {_number(line.miou_std)}'
    if line.baseline:
        return [f'{BASELINE} (baseline)', runs, miou, '—', '—', '—', '1.00',
                '—', '—', '—', '—']
    routing = line.routing
    return [
        line.value, runs, miou, line.diff.text(),
        _number(line.params_pct, sign=True, suffix='%'),
        _number(line.gflops_pct, sign=True, suffix='%'),
        _number(line.latency_ratio),
        _number(routing.get('usage_entropy'), 3),
        _number(routing.get('dominant_share'), 3),
        _number(routing.get('num_dead'), 1),
        _number(routing.get('importance_cv2'), 3)
    ]


def _escape(cell: str) -> str:
    return cell.replace('|', '\\|')


def markdown_table(lines: Sequence[TableRow]) -> List[str]:
    """One architecture's table as Markdown lines."""
    out = ['| ' + ' | '.join(COLUMNS) + ' |',
           '|' + '---|' * len(COLUMNS)]
    out += ['| ' + ' | '.join(_escape(c) for c in _cells(line)) + ' |'
            for line in lines]
    return out


def markdown(meta: dict, table: Sequence[TableRow],
             plots: Optional[Dict[str, List[str]]] = None) -> str:
    """The sweep's tables as a Markdown document.

    Args:
        meta (dict): sweep.json.
        table (sequence[TableRow]): :func:`summarise`'s rows.
        plots (dict, optional): {arch: [PNG file names]} to show below each
            architecture's table.

    Returns:
        str: The document.
    """
    seeds = ', '.join(str(s) for s in meta['seeds'])
    out = [
        f'# Sweep of family `{meta["family"]}`', '',
        f'- dataset: {meta.get("dataset", "n/a")}',
        f'- seeds: {seeds} ({len(meta["seeds"])})',
        f'- values (family order): '
        f'{", ".join(str(v) for v in meta["values"])}; paper default: '
        f'{meta.get("default", "n/a")}', ''
    ]
    for arch in ordered_once([], [line.arch for line in table]):
        lines = [line for line in table if line.arch == arch]
        out += [f'## {arch}', ''] + markdown_table(lines) + ['']
        out += [f'![{name}]({name})' for name in (plots or {}).get(arch, [])]
        out += [''] if (plots or {}).get(arch) else []
    out += _failure_section(table) + _broken_section(table) + _notes(table)
    return '\n'.join(out).rstrip() + '\n'


def _failure_section(table: Sequence[TableRow]) -> List[str]:
    failures = [f for line in table for f in line.failures]
    if not failures:
        return []
    out = ['## Failed runs (left out of the means)', '', '| run | error |',
           '|---|---|']
    out += [f'| {run} | {_escape(error)} |' for run, error in failures]
    return out + ['']


def _broken_section(table: Sequence[TableRow]) -> List[str]:
    """The runs whose row.json cannot be read, with the file and why."""
    broken = [b for line in table for b in line.broken]
    if not broken:
        return []
    out = [f'## Broken runs ({ROW_FILE} cannot be read; left out of the '
           'means)', '',
           'Run tools/analysis_tools/sweep.py on the sweep again to re-run '
           'them (they resume from their last checkpoint).', '',
           '| run | file: why |', '|---|---|']
    out += [f'| {run} | {_escape(why)} |' for run, why in broken]
    return out + ['']


def _notes(table: Sequence[TableRow]) -> List[str]:
    out = ['## Notes', ''] + [f'- {note}' for note in COLUMN_NOTES]
    several = sorted({(line.arch, line.value, line.moe_layers)
                      for line in table if line.moe_layers > 1})
    out += [
        f'- {arch} / {value}: {layers} MoE layers; its routing columns are '
        f'the mean over the layers.' for arch, value, layers in several
    ]
    missing = sum(
        max(0, line.expected - line.done - line.failed - len(line.broken))
        for line in table)
    if missing > 0:
        out.append(f'- {missing} runs have no row yet (running or not '
                   f'started); they are left out.')
    return out


def write_csv(path: str, table: Sequence[TableRow]) -> str:
    """Write the table as CSV (:data:`CSV_COLUMNS`); returns ``path``."""
    with open(path, 'w', newline='', encoding='utf-8') as file:
        writer = csv.DictWriter(file, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(line.csv_row() for line in table)
    return path
