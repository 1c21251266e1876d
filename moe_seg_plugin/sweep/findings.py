"""The paper's qualitative findings next to what the sweeps measured.

Each finding names the family that tests it and the value it expects to
win (:data:`FINDINGS`). A sweep of that family is checked per architecture
and ends in one verdict:

- ``agrees``: the expected value wins, and its advantage over the runner-up
  is outside the seed spread;
- ``disagrees``: another value wins, and its advantage over the expected
  value is outside the seed spread;
- ``inside the noise``: the advantage that decides is inside the seed
  spread (the rule of the tables, :data:`.report.SPREAD_RULE`);
- ``not measured``: the family was not swept, the expected value is not
  among its values or has no finished run, or fewer than 2 seeds pair up.

Value names are matched loosely (case, ``-``, ``_`` and spaces ignored)
against the aliases below; where the finding's value is the paper default,
the sweep's ``default`` is used when no alias matches. Adjust the aliases
here if a family names its values otherwise.
"""
import os
import os.path as osp
import re
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from .report import (SPREAD_RULE, Difference, failure, finished, load_sweep,
                     mean_std, paired, per_seed, rows_of)
from .spec import BASELINE

AGREES = 'agrees'
DISAGREES = 'disagrees'
NOISE = 'inside the noise'
NOT_MEASURED = 'not measured'
#: Stacking counts as unstable by its seed spread when its mIoU std is at
#: least this many times the largest std of the other values (and as
#: stable when at most its inverse); in between is inside the noise.
STD_RATIO = 2.0
#: Values that mean "no balancing loss" (left out of the dominant-expert
#: comparison between losses).
NO_LOSS = ('none', 'noloss', 'off', 'nobalance', 'nobalanceloss')


@dataclass(frozen=True)
class FindingSpec:
    """One of the paper's findings and how a sweep tests it.

    Attributes:
        text (str): The finding as the paper states it.
        families (tuple[str]): Family names that test it (first: the
            name shown when none was swept).
        expected (tuple[str]): Aliases of the value expected to win.
        metric (str): The number compared ('mIoU' or a routing key).
        higher (bool): Whether a higher number wins.
        use_default (bool): The expected value is the paper default, so
            the sweep's ``default`` stands in when no alias matches.
        exclude (tuple[str]): Aliases of values left out of the comparison.
        kind (str): 'best' (the expected value wins on ``metric``) or
            'unstable' (the expected value trains least stably).
    """
    text: str
    families: Tuple[str, ...]
    expected: Tuple[str, ...]
    metric: str = 'mIoU'
    higher: bool = True
    use_default: bool = False
    exclude: Tuple[str, ...] = ()
    kind: str = 'best'


FINDINGS = (
    FindingSpec('a 3x3 patch grid is best (highest mIoU)', ('grid',),
                ('3x3', 'grid3x3', 'grid3', 'g3'), use_default=True),
    FindingSpec('the 2Conv-GAP gate is best (highest mIoU)', ('gate',),
                ('DoubleConvGAPGate', '2Conv-GAP', 'doubleconvgap',
                 '2conv'), use_default=True),
    FindingSpec('top-2 routing is best (highest mIoU)', ('top_k', 'k'),
                ('2', 'top2', 'k2', 'topk2', 'top-2'), use_default=True),
    FindingSpec('one MoE layer at the decoder\'s last convolution is the '
                'best placement (highest mIoU)', ('placement',),
                ('decoder', 'decoderlast', 'decoderlastconv', 'lastconv',
                 'decode'), use_default=True),
    FindingSpec('the switch loss gives the most uniform expert usage '
                '(highest usage entropy)', ('balance_loss', 'balance',
                                            'loss'),
                ('switch', 'switchloss', 'MoESwitchLoss'),
                metric='usage_entropy'),
    FindingSpec('the switch loss gives the least collapse (lowest dominant '
                'share)', ('balance_loss', 'balance', 'loss'),
                ('switch', 'switchloss', 'MoESwitchLoss'),
                metric='dominant_share', higher=False),
    FindingSpec('the importance loss leaves a dominant expert (highest '
                'dominant share among the balancing losses)',
                ('balance_loss', 'balance', 'loss'),
                ('importance', 'importanceloss', 'MoEImportanceLoss'),
                metric='dominant_share', exclude=NO_LOSS),
    FindingSpec('shared experts do worse than independent ones (the '
                'independent value has the highest mIoU)',
                ('shared_experts', 'shared'),
                ('independent', 'shared0', 'noshared', 'none', '0'),
                use_default=True),
    FindingSpec('stacking several MoE layers trains unstably (failed or '
                'diverged runs, or the largest seed spread of mIoU)',
                ('placement', 'stacking'),
                ('stacked', 'stack', 'twostacked', '2stacked', 'stacked2'),
                kind='unstable'),
)


class Finding(NamedTuple):
    """A finding checked against one sweep and architecture."""
    finding: str
    family: str
    measured: str
    verdict: str


def normalise(name: object) -> str:
    """A name without case, spaces, ``-`` or ``_``."""
    return re.sub(r'[^a-z0-9]', '', str(name).lower())


def expected_value(spec: FindingSpec, meta: dict) -> Optional[str]:
    """The sweep's name of the value the finding expects (None if none).

    Args:
        spec (FindingSpec): The finding.
        meta (dict): sweep.json.

    Returns:
        str, optional: A value of the sweep matching an alias, else its
        ``default`` where the finding's value is the paper default.
    """
    aliases = {normalise(a) for a in spec.expected}
    for value in meta['values']:
        if normalise(value) in aliases:
            return value
    default = meta.get('default')
    if spec.use_default and default in meta['values']:
        return default
    return None


# Checks.
def check_findings(sweep_dirs: Sequence[str]) -> List[Finding]:
    """Every finding of :data:`FINDINGS` against the sweeps that test it.

    Args:
        sweep_dirs (sequence[str]): Sweep directories (any families).

    Returns:
        list[Finding]: Per finding, one entry per sweep of its family and
        architecture, or one 'not measured' entry if no sweep tests it.
    """
    sweeps = [(d, *load_sweep(d)) for d in sweep_dirs]
    found = []
    for spec in FINDINGS:
        names = {normalise(f) for f in spec.families}
        tested = [s for s in sweeps if normalise(s[1]['family']) in names]
        if not tested:
            found.append(Finding(spec.text, spec.families[0],
                                 'family not swept', NOT_MEASURED))
        for _, meta, rows in tested:
            found += _check_sweep(spec, meta, rows, len(tested) > 1)
    return found


def _check_sweep(spec: FindingSpec, meta: dict, rows: List[dict],
                 name_dataset: bool) -> List[Finding]:
    """The finding against each architecture of one sweep."""
    found = []
    archs = list(meta['archs']) + [r['arch'] for r in rows]
    check = _check_unstable if spec.kind == 'unstable' else _check_best
    for arch in dict.fromkeys(archs):
        measured, verdict = check(spec, meta, rows, arch)
        where = f'{arch} ({meta.get("dataset")})' if name_dataset else arch
        found.append(Finding(spec.text, meta['family'],
                             f'{where}: {measured}', verdict))
    return found


def _check_best(spec: FindingSpec, meta: dict, rows: List[dict],
                arch: str) -> Tuple[str, str]:
    """Whether the expected value wins on the finding's metric.

    Returns:
        tuple: (measured text, verdict).
    """
    expected = expected_value(spec, meta)
    if expected is None:
        return (f'no value named like {spec.expected[0]!r} among '
                f'{list(meta["values"])}', NOT_MEASURED)
    excluded = {normalise(a) for a in spec.exclude}
    scores = {
        value: per_seed(rows, arch, value, spec.metric)
        for value in meta['values'] if normalise(value) not in excluded
        or value == expected
    }
    scores = {value: found for value, found in scores.items() if found}
    if expected not in scores:
        return f'no finished run of {expected!r}', NOT_MEASURED
    if len(scores) < 2:
        return f'only {expected!r} has finished runs', NOT_MEASURED
    ranked = _ranked(scores, spec.higher)
    winner = ranked[0]
    other = ranked[1] if winner == expected else expected
    sign = 1.0 if spec.higher else -1.0
    lead = paired({s: sign * v for s, v in scores[winner].items()},
                  {s: sign * v for s, v in scores[other].items()})
    text = _best_text(spec, scores, winner, other, lead,
                      winner == expected)
    return text, _verdict(lead, winner == expected)


def _ranked(scores: Dict[str, Dict[int, float]], higher: bool) -> List[str]:
    """Values by mean score, the winner first."""
    means = {v: mean_std(list(s.values()))[0] for v, s in scores.items()}
    return sorted(means, key=lambda v: means[v], reverse=higher)


def _verdict(lead: Difference, expected_wins: bool) -> str:
    """The verdict from the winner's paired lead over the other value."""
    if lead.seeds < 2:
        return NOT_MEASURED
    if lead.inside_spread or lead.mean <= 0:
        return NOISE
    return AGREES if expected_wins else DISAGREES


def _best_text(spec: FindingSpec, scores: Dict[str, Dict[int, float]],
               winner: str, other: str, lead: Difference,
               expected_wins: bool) -> str:
    """'highest mIoU: '3x3' (64.00 ± 1.32); runner-up ...'."""

    def stat(value: str) -> str:
        avg, std = mean_std(list(scores[value].values()))
        spread = 'n/a' if std is None else f'{std:.{digits}f}'
        return f'{value!r} ({avg:.{digits}f} ± {spread})'

    digits = 2 if spec.metric == 'mIoU' else 3
    best = 'highest' if spec.higher else 'lowest'
    role = 'runner-up' if expected_wins else 'expected'
    centre = 'n/a' if lead.mean is None else f'{lead.mean:+.{digits}f}'
    spread = 'n/a' if lead.std is None else f'{lead.std:.{digits}f}'
    text = (f'{best} {spec.metric}: {stat(winner)}; {role} {stat(other)}; '
            f'paired lead {centre} ± {spread} over {lead.seeds} seeds')
    if lead.seeds < 2:
        return text + ' (needs >= 2 seeds to tell from noise)'
    inside = lead.inside_spread or lead.mean <= 0
    return text + (': inside the seed spread' if inside else
                   ': outside the seed spread')


def _check_unstable(spec: FindingSpec, meta: dict, rows: List[dict],
                    arch: str) -> Tuple[str, str]:
    """Whether the expected value (stacking) trains least stably: more
    failed or diverged runs than any other value, else a seed spread of
    mIoU at least :data:`STD_RATIO` times the largest of the others.

    Returns:
        tuple: (measured text, verdict).
    """
    stacked = expected_value(spec, meta)
    if stacked is None:
        return (f'no value named like {spec.expected[0]!r} among '
                f'{list(meta["values"])}', NOT_MEASURED)
    if not rows_of(rows, arch, stacked):
        return f'no ended run of {stacked!r}', NOT_MEASURED
    others = [v for v in [BASELINE] + list(meta['values']) if v != stacked]
    rates = {v: _failure_rate(rows, arch, v) for v in others}
    rates = {v: r for v, r in rates.items() if r is not None}
    own = _failure_rate(rows, arch, stacked)
    if own > 0 and own > max(rates.values(), default=0.0):
        return _failure_text(rows, arch, stacked, rates), AGREES
    return _spread_check(rows, arch, stacked, others)


def _failure_rate(rows: List[dict], arch: str,
                  value: str) -> Optional[float]:
    """Share of a value's ended runs that failed or diverged."""
    runs = rows_of(rows, arch, value)
    if not runs:
        return None
    return sum(not finished(r) for r in runs) / len(runs)


def _failure_text(rows: List[dict], arch: str, stacked: str,
                  rates: Dict[str, float]) -> str:
    runs = rows_of(rows, arch, stacked)
    bad = [r for r in runs if not finished(r)]
    worst = max(rates.values(), default=0.0)
    return (f'{len(bad)} of {len(runs)} {stacked!r} runs failed or diverged '
            f'({failure(bad[0])}); other values at most {worst:.0%}')


def _spread_check(rows: List[dict], arch: str, stacked: str,
                  others: List[str]) -> Tuple[str, str]:
    """Stacking's mIoU std against the largest std of the other values."""
    own = mean_std(list(per_seed(rows, arch, stacked).values()))[1]
    stds = {v: mean_std(list(per_seed(rows, arch, v).values()))[1]
            for v in others}
    stds = {v: s for v, s in stds.items() if s is not None}
    if own is None or not stds:
        return ('mIoU std needs >= 2 finished seeds of '
                f'{stacked!r} and of another value'), NOT_MEASURED
    widest = max(stds, key=stds.get)
    ratio = own / stds[widest] if stds[widest] > 0 else (
        float('inf') if own > 0 else 1.0)
    text = (f'no value failed more; mIoU std of {stacked!r} {own:.2f} vs '
            f'largest other {widest!r} {stds[widest]:.2f} (ratio '
            f'{ratio:.2f}; unstable at >= {STD_RATIO:g}, stable at <= '
            f'{1 / STD_RATIO:g})')
    if ratio >= STD_RATIO:
        return text, AGREES
    if ratio <= 1 / STD_RATIO:
        return text, DISAGREES
    return text, NOISE


# Writing.
def findings_markdown(findings: Sequence[Finding],
                      sweep_dirs: Sequence[str]) -> str:
    """findings.md: the rules, then one table line per checked finding."""
    out = [
        '# The paper\'s findings, checked', '',
        'Sweeps: ' + ', '.join(f'`{d}`' for d in sweep_dirs), '',
        '| finding | family | measured | verdict |', '|---|---|---|---|'
    ]
    out += [
        '| ' + ' | '.join(c.replace('|', '\\|') for c in f) + ' |'
        for f in findings
    ]
    out += [
        '', '## How a verdict is reached', '',
        f'- {SPREAD_RULE}',
        '- A "best" finding compares the expected value with the runner-up '
        '(if it wins) or with the winner (if it does not), by the mean over '
        'seeds, then by the paired lead of the winner: **agrees** / '
        '**disagrees** when the lead is outside the seed spread, **inside '
        'the noise** when it is inside, **not measured** when fewer than 2 '
        'seeds pair up, the family was not swept or its value is missing. '
        'The stock baseline never competes.',
        '- Routing findings compare the final evaluation\'s statistics '
        '(mean over a run\'s MoE layers) the same way; the dominant-expert '
        'comparison of the importance loss leaves out the no-loss value.',
        f'- Stacking is unstable when its runs failed or diverged more often '
        f'than any other value\'s, else when its mIoU std over seeds is at '
        f'least {STD_RATIO:g}x the largest std of the other values (stable '
        f'at <= {1 / STD_RATIO:g}x, inside the noise in between).',
    ]
    return '\n'.join(out) + '\n'


def write_findings(sweep_dirs: Sequence[str], out_dir: str) -> str:
    """Check the findings and write ``<out_dir>/findings.md``.

    Args:
        sweep_dirs (sequence[str]): Sweep directories.
        out_dir (str): Where findings.md goes (created).

    Returns:
        str: The path written.
    """
    findings = check_findings(sweep_dirs)
    os.makedirs(out_dir, exist_ok=True)
    path = osp.join(out_dir, 'findings.md')
    with open(path, 'w', encoding='utf-8') as file:
        file.write(findings_markdown(findings, sweep_dirs))
    return path
