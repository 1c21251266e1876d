"""Smoke demo of a PatchConvMoE layer on CPU (the README's first command).

Replaces the last 3x3 convolution of a DeepLabv3+-sized decoder by a
PatchConvMoE layer (paper defaults: 8 experts, top-2, 3x3 grid, 2Conv-GAP
gate, switch loss), checks the N=1 invariant, then fits the layer to a
spatially varying target for a few steps and prints how routing evolves.

Usage:
    python tools/demo.py [--steps 60] [--seed 0]
"""
import argparse
import time

import torch
from torch import nn

import moe_seg_plugin
from moe_seg_plugin.compat import compiled_ops_available
from moe_seg_plugin.moe import PatchConvMoE


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=60,
                        help='optimisation steps of the toy fit')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def decoder_conv(channels: int) -> nn.Module:
    """The conv a DeepLabv3+ head applies before its classifier."""
    from mmcv.cnn import DepthwiseSeparableConvModule
    return DepthwiseSeparableConvModule(
        channels, channels, 3, padding=1, norm_cfg=dict(type='BN'),
        act_cfg=dict(type='ReLU'))


def usage(moe: PatchConvMoE) -> torch.Tensor:
    """Share of (patch, chosen expert) pairs each expert received."""
    experts = moe.last_routing.experts.flatten()
    counts = torch.bincount(experts, minlength=moe.num_experts).float()
    return counts / counts.sum()


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    ops = 'full mmcv' if compiled_ops_available() else 'mmcv-lite fallback'
    print(f'moe_seg_plugin {moe_seg_plugin.__version__} | torch '
          f'{torch.__version__} | mmcv ops: {ops}')

    channels, height, width = 32, 33, 65  # 1/8 of a 264x520 crop
    dense = decoder_conv(channels).eval()
    x = torch.randn(2, channels, height, width)

    single = PatchConvMoE(dense, num_experts=1, top_k=1, expert_init='copy',
                          init_noise=0.0).eval()
    with torch.no_grad():
        gap = (single(x) - dense(x)).abs().max().item()
    print(f'[1/3] N=1, k=1 equals the dense layer: max |diff| = {gap:.2e}')

    moe = PatchConvMoE(
        dense, num_experts=8, top_k=2, grid=(3, 3),
        gate=dict(type='DoubleConvGAPGate'),
        balance_loss=dict(type='MoESwitchLoss', loss_weight=0.1))
    params = sum(p.numel() for p in moe.parameters())
    base = sum(p.numel() for p in dense.parameters())
    print(f'[2/3] PatchConvMoE: {params:,} parameters ({params / base:.1f}x '
          f'the dense conv), output {tuple(moe(x).shape)}')

    # Target: a different random conv in the left and right halves, so
    # patches benefit from different experts.
    teachers = [decoder_conv(channels).eval() for _ in range(2)]
    with torch.no_grad():
        target = torch.cat([
            teachers[0](x)[..., :width // 2], teachers[1](x)[..., width // 2:]
        ], dim=3)
    optimizer = torch.optim.Adam(moe.parameters(), lr=3e-3)
    print(f'[3/3] fitting for {args.steps} steps (task loss + 0.1 x switch '
          'loss; 0.1 is balanced, 0.8 collapsed)')
    start = time.perf_counter()
    moe.train()
    for step in range(1, args.steps + 1):
        task = (moe(x) - target).pow(2).mean()
        balance = sum(moe.balance_loss().values())
        optimizer.zero_grad()
        (task + balance).backward()
        optimizer.step()
        if step == 1 or step % 20 == 0 or step == args.steps:
            share = usage(moe)
            print(f'  step {step:3d}  task {task.item():.4f}  '
                  f'loss_moe_switch {balance.item():.3f}  usage '
                  + ' '.join(f'{s:.2f}' for s in share.tolist()))
    print(f'done in {time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    main()
