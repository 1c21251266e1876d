_base_ = ['./patch_moe_paper.py']
# The paper's MoE settings (patch_moe_paper.py) with conv-scope experts:
# each expert is a copy of the replaced module's convolution only; its norm
# and activation run once, shared, on the mixed map, and each patch's top-k
# kernels are merged into one (merge_experts, on by default), so a patch is
# convolved once, as in the stock model. Needs a replaced module with one
# convolution followed only by pixel-wise layers (not DeepLabv3+'s
# depthwise-separable decoder conv, not ENet's bottlenecks). A MoE config
# uses it as `moe=_base_.moe_merged`.
moe_merged = dict(_base_.moe_paper, expert_scope='conv')
