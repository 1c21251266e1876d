_base_ = ['./patch_moe_merged.py']
# Low-rank experts on top of the merged conv-scope settings
# (patch_moe_merged.py): one shared convolution of the replaced one's
# geometry to r channels, then N 1x1 experts r -> C_out, merged per patch.
# Expert parameters: r * C_in * kh * kw + N * C_out * r instead of
# N * C_out * C_in * kh * kw. A MoE config uses it as
# `moe=_base_.moe_lowrank32` (r = 32) or `moe=_base_.moe_lowrank16` (r = 16).
moe_lowrank32 = dict(_base_.moe_merged, expert_rank=32)
moe_lowrank16 = dict(_base_.moe_merged, expert_rank=16)
