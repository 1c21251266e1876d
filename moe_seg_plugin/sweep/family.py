"""Ablation families: one design dimension of the paper per config file,
expanded into the runs of a sweep, and each run's config.

A family file (``configs/ablations/families/<name>.py``) defines::

    family = dict(
        description='...',          # one line
        default='grid3x3',          # the paper-default value
        baseline=True,              # add the stock model per arch and seed
        values=dict(grid2x2=dict(grid=(2, 2)), ...),
        finding='3x3 grid best',    # the paper's finding, '' if none
        claims=[dict(text='3x3 grid best', value='grid3x3',
                     metric='mIoU', best='max')])

A value's settings are PatchConvMoE settings (applied to every MoE layer of
the arch's paper-default MoE config) plus the family keys of
:data:`FAMILY_KEYS`. A claim says which value the paper found best (or
worst) by a row metric: 'mIoU', a routing statistic ('usage_entropy',
'dominant_share', 'num_dead', 'importance_cv2') or 'mIoU_std' (the spread
over seeds); ``best`` is 'max' or 'min'.

The architectures, their paper-default MoE config per dataset, their
placement targets and the settings each cannot have (``unavailable``: a
sweep skips such a value there, with a warning) are in
``configs/ablations/families/_archs.py``.
"""
import copy
import difflib
import logging
import os.path as osp
import re
from dataclasses import dataclass
from glob import glob
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

from moe_seg_plugin_startup.config_scope import config_root
from ..engine.errors import SetupError
from ..engine.run_setup import config_syntax_error, load_config
from ..models.injection import MOE_SETTINGS, is_conv_like
from ..models.stock import stock_config, stock_model_config
from .spec import BASELINE, RunSpec

FAMILIES_DIR = osp.join(config_root(), 'ablations', 'families')
ARCHS_FILE = osp.join(FAMILIES_DIR, '_archs.py')

#: Keys of a family value besides PatchConvMoE settings:
#:
#: - placement (str): a placement of the arch table ('decoder',
#:   'classifier', 'encoder', 'stacked'), resolved per arch to targets.
#: - targets (list[str]): dotted paths in the segmentor that become MoE
#:   layers, each with the config's paper MoE settings.
#: - image_patch_size (int): a patch size in image pixels, turned into the
#:   layer's ``patch_size`` (output pixels) by the arch's stride.
#: - from_baseline (bool): start from the same seed's stock baseline
#:   checkpoint (``RunSpec.needs``; the runner passes it as load_from).
FAMILY_KEYS = ('placement', 'targets', 'image_patch_size', 'from_baseline')
#: Keys of ``RunSpec.options`` that :func:`run_config` applies.
OPTION_KEYS = tuple(MOE_SETTINGS) + ('targets', )
FAMILY_FIELDS = ('description', 'values', 'default', 'baseline', 'finding',
                 'claims')
CLAIM_KEYS = ('text', 'value', 'metric', 'best')
BEST = ('max', 'min')
VALUE_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')
#: The placement that is the MoE config's own layer (the paper default).
DEFAULT_PLACEMENT = 'decoder'

_CONFIGS: Dict[Tuple[str, float], Config] = {}
_MODULES: Dict[str, Dict[str, bool]] = {}


@dataclass(frozen=True)
class Family:
    """One design dimension: its values and the paper's finding on it.

    Attributes:
        name (str): The family's name (its file name without '.py').
        description (str): One line.
        values (dict[str, dict]): Value name -> settings, in order.
        default (str): The paper-default value's name.
        finding (str): The paper's finding on this dimension ('' if none).
        claims (tuple[dict]): The finding as checks: text, value, metric,
            best ('max' or 'min').
        baseline (bool): Whether a sweep adds the stock model per arch and
            seed (value ``BASELINE``).
        path (str): The family file.
    """
    name: str
    description: str
    values: Dict[str, dict]
    default: str
    finding: str = ''
    claims: Tuple[dict, ...] = ()
    baseline: bool = True
    path: str = ''

    def select(self, names: Optional[Sequence[str]] = None) -> List[str]:
        """The value names to run, in the family's order.

        Args:
            names (list[str], optional): A subset; None for all.

        Returns:
            list[str]: The chosen value names.
        """
        if names is None:
            return list(self.values)
        unknown = [name for name in names if name not in self.values]
        if unknown:
            raise SetupError(
                f'family {self.name!r}: unknown value(s) {unknown}; its '
                f'values: {list(self.values)}')
        return [name for name in self.values if name in names]

    def from_baseline(self, value: str) -> bool:
        """Whether ``value`` starts from the stock baseline's checkpoint."""
        return bool(self.values[value].get('from_baseline', False))


# Family files.
def family_names() -> List[str]:
    """Names of the shipped families (files in :data:`FAMILIES_DIR`)."""
    files = glob(osp.join(FAMILIES_DIR, '*.py'))
    return sorted(
        osp.splitext(osp.basename(path))[0] for path in files
        if not osp.basename(path).startswith('_'))


def family_path(name: str) -> str:
    """The file of a family given by name or by path.

    Raises:
        SetupError: If there is no such family, listing the known ones.
    """
    if name.endswith('.py') or osp.sep in name:
        if osp.isfile(name):
            return osp.abspath(name)
        raise SetupError(f'family file {name!r} does not exist; shipped '
                         f'families: {family_names()}')
    if name in family_names():
        return osp.join(FAMILIES_DIR, f'{name}.py')
    raise SetupError(f'unknown family {name!r}; known: {family_names()} '
                     '(or give the path of a family file)')


def load_family(name: str) -> Family:
    """Read and check a family file.

    Args:
        name (str): A shipped family's name or the path of a family file.

    Returns:
        Family: The family.

    Raises:
        SetupError: For an unknown family or a family file with a missing
            or wrong field, naming the file, the value and the key.
    """
    path = family_path(name)
    data = _read_config(path).get('family')
    if not isinstance(data, dict):
        raise SetupError(f'family file {path!r}: defines no '
                         '`family = dict(...)`')
    return _parse_family(osp.splitext(osp.basename(path))[0],
                         _plain(data), path)


def _read_config(path: str) -> Config:
    """A config file read by MMEngine; a syntax error as one line."""
    try:
        return Config.fromfile(path)
    except SyntaxError as exc:
        raise config_syntax_error(exc, path) from exc


def _parse_family(name: str, data: dict, path: str) -> Family:
    """A :class:`Family` from a family file's ``family`` dict."""
    where = f'family file {path!r}'
    unknown = sorted(set(data) - set(FAMILY_FIELDS))
    if unknown:
        raise SetupError(f'{where}: unknown field(s) {unknown}; allowed: '
                         f'{list(FAMILY_FIELDS)}')
    values = data.get('values')
    if not isinstance(values, dict) or not values:
        raise SetupError(f'{where}: `values` must be a non-empty '
                         'dict(value name=dict(settings), ...)')
    baseline = data.get('baseline', True)
    if not isinstance(baseline, bool):
        raise SetupError(f'{where}: `baseline` must be True or False, got '
                         f'{baseline!r}')
    for value, settings in values.items():
        _check_value(f'{where}: value {value!r}', value, settings, baseline)
    default = data.get('default')
    if default not in values:
        raise SetupError(f'{where}: `default` must name one of its values '
                         f'{list(values)}, got {default!r}')
    claims = tuple(data.get('claims') or ())
    for index, claim in enumerate(claims):
        _check_claim(f'{where}: claims[{index}]', claim, values)
    return Family(name, str(data.get('description', '')), values, default,
                  str(data.get('finding') or ''), claims, baseline, path)


def _check_value(where: str, name: str, settings: dict,
                 baseline: bool) -> None:
    """Refuse a value whose name or settings a sweep cannot run."""
    if (not isinstance(name, str) or not VALUE_NAME.fullmatch(name)
            or '__' in name or name == BASELINE):
        raise SetupError(
            f'{where}: a value name is letters, digits, ".", "-" and single '
            f'"_" (it is part of run directories), and not {BASELINE!r}')
    if not isinstance(settings, dict):
        raise SetupError(f'{where}: settings must be a dict, got '
                         f'{type(settings).__name__}')
    unknown = sorted(set(settings) - set(MOE_SETTINGS) - set(FAMILY_KEYS))
    if unknown:
        raise SetupError(
            f'{where}: unknown setting(s) {unknown}; allowed: PatchConvMoE '
            f'settings {sorted(MOE_SETTINGS)} and family keys '
            f'{list(FAMILY_KEYS)}')
    if 'placement' in settings and 'targets' in settings:
        raise SetupError(f'{where}: give `placement` (a name of the arch '
                         'table) or `targets` (dotted paths), not both')
    if 'placement' in settings and not isinstance(settings['placement'],
                                                  str):
        raise SetupError(f'{where}: `placement` must be a name such as '
                         f"'classifier', got {settings['placement']!r}")
    if 'targets' in settings:
        _check_targets_setting(where, settings['targets'])
    _check_image_patch_size(where, settings)
    if 'image_patch_size' in settings and ('placement' in settings
                                           or 'targets' in settings):
        raise SetupError(
            f'{where}: `image_patch_size` is converted by the default MoE '
            "layer's stride, so it cannot go with `placement` / `targets`; "
            'give `patch_size` (output pixels) there')
    if not isinstance(settings.get('from_baseline', False), bool):
        raise SetupError(f'{where}: `from_baseline` must be True or False')
    if settings.get('from_baseline') and not baseline:
        raise SetupError(f'{where}: `from_baseline` needs the stock '
                         'baseline runs; set the family\'s baseline=True')


def _check_targets_setting(where: str, targets) -> None:
    if (not isinstance(targets, list) or not targets
            or not all(isinstance(t, str) and t for t in targets)):
        raise SetupError(f'{where}: `targets` must be a non-empty list of '
                         f"dotted paths, e.g. ['decode_head.conv_seg'], got "
                         f'{targets!r}')


def _check_image_patch_size(where: str, settings: dict) -> None:
    size = settings.get('image_patch_size')
    if size is None:
        return
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise SetupError(f'{where}: `image_patch_size` must be a positive '
                         f'int (image pixels), got {size!r}')
    if 'grid' in settings or 'patch_size' in settings:
        raise SetupError(f'{where}: `image_patch_size` replaces grid and '
                         'patch_size; give only one of the three')


def _check_claim(where: str, claim: dict, values: dict) -> None:
    if not isinstance(claim, dict) or set(claim) != set(CLAIM_KEYS):
        raise SetupError(f'{where}: a claim is dict(text=..., value=..., '
                         f'metric=..., best=...), got {claim!r}')
    if claim['value'] not in values:
        raise SetupError(f'{where}: value {claim["value"]!r} is not one of '
                         f'the family\'s values {list(values)}')
    if claim['best'] not in BEST:
        raise SetupError(f'{where}: best must be one of {list(BEST)}, got '
                         f'{claim["best"]!r}')


# The arch table.
def arch_table() -> Dict[str, dict]:
    """The arch table (``_archs.py``): arch key -> its entry.

    Raises:
        SetupError: For an ``unavailable`` entry of the wrong form, naming
            the arch and the key.
    """
    table = _plain(_read_config(ARCHS_FILE)['archs'])
    for arch, entry in table.items():
        _check_unavailable(arch, entry.get('unavailable', {}))
    return table


def _check_unavailable(arch: str, unavailable: dict) -> None:
    """Refuse an ``unavailable`` entry that is not setting -> value name
    -> reason, or whose setting is not a family value's key."""
    where = f'arch table {ARCHS_FILE!r}: arch {arch!r}: unavailable'
    allowed = ['placement'] + sorted(MOE_SETTINGS)
    if not isinstance(unavailable, dict):
        raise SetupError(f'{where}: must be dict(setting=dict(value='
                         f"'reason', ...)), got {unavailable!r}")
    for key, reasons in unavailable.items():
        if key not in allowed:
            raise SetupError(f'{where}: unknown setting {key!r}; allowed: '
                             f'{allowed}')
        if not isinstance(reasons, dict) or not all(
                isinstance(reason, str) and reason
                for reason in reasons.values()):
            raise SetupError(f"{where}.{key}: must be dict(value='reason', "
                             f'...) with a reason per value, got {reasons!r}')


def unavailable_reason(arch: str, settings: dict,
                       table: Optional[Dict[str, dict]] = None
                       ) -> Optional[str]:
    """Why an arch cannot have a family value's settings.

    The arch entry's ``unavailable`` lists, per setting ('placement' or a
    PatchConvMoE setting), the value names the arch cannot have and why.

    Args:
        arch (str): An arch key of the table.
        settings (dict): A family value's settings.
        table (dict, optional): The arch table; None to read it.

    Returns:
        str | None: 'key=value: reason' for the first setting the arch
        cannot have; None if it can have them all.
    """
    unavailable = (table or arch_table())[arch].get('unavailable', {})
    for key, value in settings.items():
        reasons = unavailable.get(key, {})
        if isinstance(value, str) and value in reasons:
            return f'{key}={value!r}: {reasons[value]}'
    return None


def arch_names() -> List[str]:
    """The architecture keys of the arch table, in its order."""
    return list(arch_table())


def dataset_names(table: Optional[Dict[str, dict]] = None) -> List[str]:
    """The datasets of the arch table's config column, in its order."""
    names: List[str] = []
    for entry in (table or arch_table()).values():
        names += [name for name in entry['configs'] if name not in names]
    return names


def arch_config(arch: str, dataset: str = 'street',
                table: Optional[Dict[str, dict]] = None) -> str:
    """Absolute path of an arch's paper-default MoE config for a dataset.

    Raises:
        SetupError: For an unknown arch or dataset, listing the allowed.
    """
    table = table or arch_table()
    if arch not in table:
        raise SetupError(f'unknown arch {arch!r}; allowed: {list(table)}')
    configs = table[arch]['configs']
    if dataset not in configs:
        raise SetupError(
            f'unknown dataset {dataset!r} for arch {arch!r}; allowed: '
            f'{list(configs)}')
    return osp.join(config_root(), configs[dataset])


def placement_targets(arch: str, placement: str,
                      table: Optional[Dict[str, dict]] = None
                      ) -> Optional[List[str]]:
    """The dotted paths of a named placement on an arch.

    Returns:
        list[str] | None: The targets; None if the arch cannot have this
        placement (:func:`unavailable_reason` says why).

    Raises:
        SetupError: For a placement the arch table does not know.
    """
    table = table or arch_table()
    entry = table[arch]
    reason = unavailable_reason(arch, dict(placement=placement), table)
    if reason is not None:
        return None
    if placement not in entry['placement']:
        known = list(entry['placement']) + list(
            entry.get('unavailable', {}).get('placement', {}))
        raise SetupError(f'arch {arch!r}: unknown placement {placement!r}; '
                         f'allowed: {known}')
    return list(entry['placement'][placement])


# Expansion.
def expand(family: Union[str, Family],
           archs: Optional[Sequence[str]] = None,
           seeds: Sequence[int] = (0, ),
           dataset: str = 'street',
           values: Optional[Sequence[str]] = None) -> List[RunSpec]:
    """The runs of a family: the stock baselines (per arch, then seed)
    first, then per arch each value over the seeds.

    A value an arch cannot have (its entry's ``unavailable``: ENet's
    classifier placement, conv-scope experts on DeepLabv3+ and ENet) is
    skipped there, with a warning.

    Args:
        family (str | Family): The family, or its name or file.
        archs (list[str], optional): Architecture keys; None for all.
        seeds (list[int]): ``randomness.seed`` of the runs. Default: (0,).
        dataset (str): Column of the arch table. Default: 'street'.
        values (list[str], optional): A subset of the values; None for all.

    Returns:
        list[RunSpec]: The runs, run_ids unique.

    Raises:
        SetupError: For an unknown family, value, arch or dataset, repeated
            archs or seeds, or nothing left to run.
    """
    family = family if isinstance(family, Family) else load_family(family)
    table = arch_table()
    archs = _unique(list(table) if archs is None else list(archs), 'arch')
    seeds = _check_seeds(seeds)
    if dataset not in dataset_names(table):
        raise SetupError(f'unknown dataset {dataset!r}; allowed: '
                         f'{dataset_names(table)}')
    chosen = family.select(values)
    configs = {arch: arch_config(arch, dataset, table) for arch in archs}
    runs = [
        run for arch in archs for value in chosen
        for run in _value_runs(family, value, arch, seeds, configs[arch],
                               table)
    ]
    if not runs:
        raise SetupError(f'family {family.name!r}: none of the values '
                         f'{chosen} can run on the archs {archs}')
    baselines = [
        RunSpec(family.name, arch, BASELINE, seed, configs[arch])
        for arch in archs for seed in seeds
    ] if family.baseline else []
    return baselines + runs


def _unique(names: List[str], what: str) -> List[str]:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SetupError(f'{what}s given more than once: {repeated}')
    if not names:
        raise SetupError(f'no {what}s given')
    return names


def _check_seeds(seeds: Sequence[int]) -> List[int]:
    seeds = list(seeds)
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int)
           or s < 0]
    if bad:
        raise SetupError(f'seeds must be ints >= 0, got {bad}')
    return _unique(seeds, 'seed')


def _value_runs(family: Family, value: str, arch: str, seeds: List[int],
                config: str, table: Dict[str, dict]) -> List[RunSpec]:
    """The runs of one value on one arch (none if it cannot have it)."""
    reason = unavailable_reason(arch, family.values[value], table)
    if reason is not None:
        print_log(
            f'family {family.name!r}: value {value!r} skipped on arch '
            f'{arch!r}: {reason}', logger='current', level=logging.WARNING)
        return []
    options = value_options(family, value, arch, table)
    return [
        RunSpec(family.name, arch, value, seed, config,
                copy.deepcopy(options),
                _baseline_id(family, arch, seed)
                if family.from_baseline(value) else None) for seed in seeds
    ]


def _baseline_id(family: Family, arch: str, seed: int) -> str:
    return RunSpec(family.name, arch, BASELINE, seed, '').run_id


def value_options(family: Family, value: str, arch: str,
                  table: Optional[Dict[str, dict]] = None) -> Optional[dict]:
    """A value's settings on an arch as ``RunSpec.options`` (plain JSON
    types): PatchConvMoE settings plus ``targets``.

    Returns:
        dict | None: The options; None if the arch cannot have the value
        (:func:`unavailable_reason` says why).
    """
    table = table or arch_table()
    if unavailable_reason(arch, family.values[value], table) is not None:
        return None
    settings = copy.deepcopy(family.values[value])
    settings.pop('from_baseline', None)
    placement = settings.pop('placement', None)
    if placement is not None:
        try:
            targets = placement_targets(arch, placement, table)
        except SetupError as exc:
            raise SetupError(f'family {family.name!r}, value {value!r}: '
                             f'{exc}') from exc
        settings['targets'] = targets
    targets = settings.get('targets')
    if targets is not None and targets == table[arch]['placement'].get(
            DEFAULT_PLACEMENT):
        del settings['targets']  # the MoE config's own layer, as it is
    size = settings.pop('image_patch_size', None)
    if size is not None:
        settings['patch_size'] = _patch_size(family, value, arch, size,
                                             table[arch]['stride'])
    return _plain(settings)


def _patch_size(family: Family, value: str, arch: str, size: int,
                stride: int) -> int:
    """An image patch size in the default MoE layer's output pixels."""
    if size % stride:
        raise SetupError(
            f'family {family.name!r}, value {value!r}, arch {arch!r}: '
            f'image_patch_size {size} is not a multiple of the arch\'s '
            f'stride {stride} (image pixels per pixel of its MoE layer\'s '
            'map)')
    return size // stride


def _plain(node):
    """``node`` with ConfigDicts as dicts and tuples as lists (JSON)."""
    if isinstance(node, dict):
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(value) for value in node]
    return node


# A run's config.
def run_config(spec: RunSpec, cfg_options: Optional[dict] = None) -> Config:
    """The config of one run of a sweep.

    The arch's paper-default MoE config (``spec.config``) with the value's
    settings (``spec.options``) on every MoE layer, ``targets`` turned into
    a PatchMoESegmentor with one paper-default MoE layer per target; for a
    baseline, the stock config behind it. Then ``randomness.seed`` and the
    user's ``cfg_options`` (``--cfg-options``).

    Args:
        spec (RunSpec): The run.
        cfg_options (dict, optional): Dotted keys merged last.

    Returns:
        Config: The run's config.

    Raises:
        SetupError: If the config is missing, or a setting's key does not
            exist in it (an unknown key, a MoE setting on a config without
            MoE layers, a target path that is not a conv of the model),
            naming the family, value, arch and key.
    """
    cfg = _cached_config(spec)
    if spec.baseline:
        cfg = stock_config(cfg)
    else:
        _apply_options(cfg, spec)
    randomness = dict(cfg.get('randomness') or {})
    randomness['seed'] = spec.seed
    cfg.randomness = randomness
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def _where(spec: RunSpec) -> str:
    return (f'family {spec.family!r}, value {spec.value!r}, arch '
            f'{spec.arch!r}')


def _cached_config(spec: RunSpec) -> Config:
    """A copy of ``spec.config``, read once per file version."""
    if not osp.isfile(spec.config):
        raise SetupError(f'{_where(spec)}: config file {spec.config!r} does '
                         'not exist')
    key = (osp.abspath(spec.config), osp.getmtime(spec.config))
    if key not in _CONFIGS:
        _CONFIGS[key] = load_config(spec.config)
    return copy.deepcopy(_CONFIGS[key])


def _apply_options(cfg: Config, spec: RunSpec) -> None:
    """Put ``spec.options`` into ``cfg.model`` (in place)."""
    options = copy.deepcopy(spec.options)
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise SetupError(
            f'{_where(spec)}: unknown key(s) {unknown} in the run\'s '
            f'options; allowed: {sorted(OPTION_KEYS)}')
    targets = options.pop('targets', None)
    if targets is not None:
        _place_layers(cfg, targets, spec)
    layers = moe_layer_configs(cfg.model)
    if options and not layers:
        raise SetupError(
            f'{_where(spec)}: key {sorted(options)[0]!r}: the config '
            f'{spec.config!r} has no MoE layer (no PatchMoEHead or '
            'PatchMoESegmentor in its model) to set it on')
    for layer in layers:
        set_moe_settings(layer, options)


def moe_layer_configs(model: dict) -> List[dict]:
    """The settings dicts of every MoE layer in a model config, to edit in
    place: a ``PatchMoEHead``'s ``moe`` and each entry of a
    ``PatchMoESegmentor``'s ``moe_layers``, wherever they are nested."""
    found: List[dict] = []
    if isinstance(model, (list, tuple)):
        for item in model:
            found += moe_layer_configs(item)
        return found
    if not isinstance(model, dict):
        return found
    kind = str(model.get('type', '')).rpartition('.')[2]
    if kind == 'PatchMoEHead':
        if model.get('moe') is None:
            model['moe'] = ConfigDict()
        found.append(model['moe'])
    elif kind == 'PatchMoESegmentor':
        found += [layer for layer in model.get('moe_layers') or []]
    for key, value in model.items():
        if key not in ('moe', 'moe_layers'):
            found += moe_layer_configs(value)
    return found


def set_moe_settings(layer: dict, settings: dict) -> None:
    """Set PatchConvMoE settings on one layer's config (in place).

    ``grid`` and ``patch_size`` are alternatives: setting one (not None)
    clears the other. Lists become tuples for both.
    """
    for key, value in settings.items():
        value = copy.deepcopy(value)
        if key in ('grid', 'patch_size') and isinstance(value, list):
            value = tuple(value)
        other = {'grid': 'patch_size', 'patch_size': 'grid'}.get(key)
        if (other and value is not None and other not in settings
                and other in layer):
            layer[other] = None
        layer[key] = value


def _place_layers(cfg: Config, targets: List[str], spec: RunSpec) -> None:
    """Turn ``cfg.model`` into a PatchMoESegmentor with a MoE layer at each
    target, each with the config's own (paper-default) MoE settings."""
    _check_targets_setting(f'{_where(spec)}: key \'targets\'', targets)
    layers = moe_layer_configs(cfg.model)
    if not layers:
        raise SetupError(
            f'{_where(spec)}: key \'targets\': the config {spec.config!r} '
            'has no MoE layer whose settings the new layers could take')
    settings = {k: v for k, v in layers[0].items() if k != 'target'}
    model = stock_model_config(cfg.model)
    check_targets(model, targets, f'{_where(spec)}: key \'targets\'')
    model['segmentor_type'] = model.get('type', 'EncoderDecoder')
    model['type'] = 'PatchMoESegmentor'
    model['moe_layers'] = [
        ConfigDict(copy.deepcopy(settings), target=target)
        for target in targets
    ]
    cfg.model = model


def check_targets(model: dict, targets: List[str], where: str) -> None:
    """Refuse targets that are not conv-like modules of the model.

    Args:
        model (dict): A stock model config (no MoE wrappers).
        targets (list[str]): Dotted paths in the segmentor.
        where (str): Start of the error message.

    Raises:
        SetupError: Naming the target and the nearest conv-like paths.
    """
    modules = _module_paths(model)
    convs = [path for path, conv_like in modules.items() if conv_like]
    for target in targets:
        if modules.get(target):
            continue
        near = difflib.get_close_matches(target, convs, n=5, cutoff=0.4)
        what = ('is not a conv-like module' if target in modules else
                'is no module of the model')
        raise SetupError(f'{where}: {target!r} {what}; nearest conv-like '
                         f'paths: {near or convs[-5:]}')


def _module_paths(model: dict) -> Dict[str, bool]:
    """Every module path of the model a config builds -> whether it is
    conv-like (built once per model config, the global RNG untouched)."""
    key = repr(model)
    if key not in _MODULES:
        built = build_without_weights(model)
        _MODULES[key] = {
            name: is_conv_like(module)
            for name, module in built.named_modules() if name
        }
    return _MODULES[key]


def build_without_weights(model: dict):
    """The model of a model config, built on the meta device (no memory,
    no initialisation: for its structure only); on the CPU where a module
    cannot be built on meta. The global RNG is left untouched.

    Args:
        model (dict): A model config.

    Returns:
        nn.Module: The model.
    """
    import torch
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmseg'), \
            torch.random.fork_rng(devices=[]):
        try:
            with torch.device('meta'):
                return MODELS.build(copy.deepcopy(model))
        except Exception:  # a module that computes while it is built
            return MODELS.build(copy.deepcopy(model))
