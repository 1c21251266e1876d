"""``model-index.yml``: what ``mim search moe_seg_plugin`` lists.

One OpenMMLab model-index entry per shipped config (every ``.py`` under
``configs/`` except ``_base_`` and the sweep families): its architecture
(the collection), training data, crop size, parameters and FLOPs at the
crop size (batch 1, MoE layers as they run, which depends on where the
freshly initialised gate routes a random input: both drawn from seed 0; see
:mod:`.flops`) and, for a
MoE config, the PatchConvMoE settings of its layers.
``tools/misc/model_index.py``
writes the file; the package ships it as ``.mim/model-index.yml``.
"""
import os
import os.path as osp
from typing import Dict, List, Optional

import torch

from ..models.injection import moe_layers

#: Folders under configs/ that hold no runnable config.
SKIPPED_FOLDERS = ('_base_', osp.join('ablations', 'families'))

#: The folder under configs/ whose configs vary other architectures' ones;
#: it has no README of its own.
ABLATIONS_FOLDER = 'ablations'

#: Collection names of the config folders.
ARCHITECTURES = {
    'deeplabv3plus': 'DeepLabV3+', 'enet': 'ENet', 'erfnet': 'ERFNet',
    'lraspp': 'LR-ASPP', 'ocrnet': 'OCRNet', 'pspnet': 'PSPNet',
    'unet': 'UNet', 'upernet': 'UPerNet'
}


def shipped_configs(root: str) -> List[str]:
    """Every runnable config under ``root``, relative, sorted.

    Args:
        root (str): The configs folder.

    Returns:
        list[str]: Paths relative to ``root`` ('enet/patchmoe_enet_...py').
    """
    found = []
    for folder, _, files in os.walk(root):
        relative = osp.relpath(folder, root)
        if any(relative == s or relative.startswith(s + os.sep)
               for s in SKIPPED_FOLDERS):
            continue
        found += [
            osp.normpath(osp.join(relative, f)) for f in files
            if f.endswith('.py') and not f.startswith('_')
        ]
    return sorted(found)


def architecture_of(relative: str) -> str:
    """The collection a config belongs to, from its file name."""
    stem = osp.basename(relative)
    for folder, name in ARCHITECTURES.items():
        if folder in stem.replace('-', '').replace('_', ''):
            return name
    return relative.split(os.sep)[0]


def training_data(cfg) -> str:
    """'Cityscapes', 'BDD100K', or the built-in street scenes in one of
    their layouts ('street scenes (Cityscapes layout)')."""
    dataset = cfg.train_dataloader.dataset
    kind = str(dataset.get('type', ''))
    layout = 'BDD100K' if 'BDD' in kind.upper() else 'Cityscapes'
    if 'street' in str(dataset.get('data_root', '')):
        return f'street scenes ({layout} layout)'
    return layout


def moe_settings(model) -> Dict[str, object]:
    """The PatchConvMoE settings of a model, as model-index metadata.

    Returns:
        dict: Empty for a stock model; else the layers' paths and, where all
        layers agree, experts, top-k, grid or patch size, gate, weighting,
        balancing losses, shared experts and expert initialisation.
    """
    layers = moe_layers(model)
    if not layers:
        return {}

    def agreed(values: List[object]) -> object:
        return values[0] if len(set(map(str, values))) == 1 else 'per layer'

    def split(layer) -> str:
        if layer.grid:
            return f'{layer.grid[0]}x{layer.grid[1]}'
        return f'{layer.patch_size[0]}x{layer.patch_size[1]} px'

    every = list(layers.values())
    settings = {
        'MoE Layers': list(layers),
        'MoE Experts': agreed([layer.num_experts for layer in every]),
        'MoE Top-k': agreed([layer.top_k for layer in every]),
        'MoE Grid': agreed([split(layer) for layer in every]),
        'MoE Gate': agreed([type(layer.gate).__name__ for layer in every]),
        'MoE Weighting': agreed([layer.weighting for layer in every]),
        'MoE Balance Loss': agreed([
            ', '.join(type(loss).__name__ for loss in layer.balance_losses)
            or 'none' for layer in every
        ]),
        'MoE Shared Experts': agreed(
            [len(layer.shared_experts) for layer in every]),
        'MoE Expert Init': agreed([layer.expert_init for layer in every]),
    }
    # Listed where it is not the paper's (module experts), so that the
    # entries of the paper's formulation stay as they were.
    scopes = [
        layer.expert_scope + ('' if layer.expert_rank is None else
                              f' (rank {layer.expert_rank})')
        for layer in every
    ]
    if any(scope != 'module' for scope in scopes):
        settings['MoE Expert Scope'] = agreed(scopes)
    return settings


def crop_size(cfg) -> List[int]:
    """The training crop (H, W) the FLOPs are counted at."""
    size = cfg.model.get('data_preprocessor', {}).get('size')
    if size is None:
        raise ValueError('model.data_preprocessor.size is not set: cannot '
                         'tell the crop size to count FLOPs at')
    return [int(size[0]), int(size[1])]


def model_entry(root: str, relative: str, flops: bool = True) -> dict:
    """One model-index entry.

    Args:
        root (str): The configs folder.
        relative (str): The config's path under ``root``.
        flops (bool): Count parameters and FLOPs (a traced forward at the
            crop size). Default: True.

    Returns:
        dict: Name, In Collection, Config, Metadata (and nothing else: the
        plugin ships no weights or results).
    """
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from ..engine import load_config
    from .flops import analyze_model, inference_model

    cfg = load_config(osp.join(root, relative))
    init_default_scope('mmseg')
    height, width = crop_size(cfg)
    metadata = {
        'Training Data': training_data(cfg),
        'Crop Size': f'{height}x{width}',
    }
    # FLOPs of a MoE layer depend on where its fresh gate routes the random
    # input, so both are drawn from one seed.
    torch.manual_seed(0)
    model = inference_model(cfg) if flops else MODELS.build(cfg.model)
    if flops:
        complexity = analyze_model(model, (height, width))
        metadata['Parameters (M)'] = round(complexity.params / 1e6, 3)
        metadata['FLOPs (G)'] = round(complexity.flops / 1e9, 3)
    metadata.update(moe_settings(model))
    return {
        'Name': osp.splitext(osp.basename(relative))[0],
        'In Collection': architecture_of(relative),
        'Config': osp.join('configs', relative).replace(os.sep, '/'),
        'Metadata': metadata,
    }


def collection_readme(name: str, models: List[dict]) -> str:
    """The README of a collection: ``configs/<folder>/README.md`` of the one
    architecture folder that holds its configs (ablation presets aside).

    Args:
        name (str): The collection ('PSPNet').
        models (list[dict]): Model-index entries (``In Collection``,
            ``Config``).

    Returns:
        str: The README's path from the repository root.
    """
    folders = sorted({
        m['Config'].split('/')[1]
        for m in models if m['In Collection'] == name
        and m['Config'].split('/')[1] != ABLATIONS_FOLDER
    })
    if len(folders) != 1:
        raise ValueError(f'collection {name!r}: its configs should lie in '
                         f'one folder under configs/, found {folders}')
    return f'configs/{folders[0]}/README.md'


def model_index(root: str, configs: Optional[List[str]] = None,
                flops: bool = True, progress=None,
                kept: Optional[List[dict]] = None) -> dict:
    """The whole model index.

    Args:
        root (str): The configs folder.
        configs (list[str], optional): Configs under ``root``; default all
            shipped ones.
        flops (bool): Count parameters and FLOPs. Default: True.
        progress (callable, optional): Called with each config's path.
        kept (list[dict], optional): Entries of an earlier index to reuse
            for the configs they list (``Config`` key); only the other
            configs are counted.

    Returns:
        dict: ``Collections`` and ``Models``, ready for ``yaml.safe_dump``.
    """
    reuse = {entry['Config']: entry for entry in kept or []}
    models = []
    for relative in configs or shipped_configs(root):
        listed = reuse.get(osp.join('configs', relative).replace(os.sep, '/'))
        if listed is not None:
            models.append(listed)
            continue
        if progress is not None:
            progress(relative)
        models.append(model_entry(root, relative, flops))
    collections = sorted({m['In Collection'] for m in models})
    return {
        'Collections': [{
            'Name': name,
            'Metadata': {'Architecture': [name]},
            'README': collection_readme(name, models)
        } for name in collections],
        'Models': models,
    }
