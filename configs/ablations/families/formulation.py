# Formulation family: what an expert is, compared like any other dimension
# (accuracy, parameters, FLOPs, latency), each with the paper's other MoE
# settings. 'module' is the paper's (every expert a copy of the replaced
# module, its norm and activation included). 'merged' makes the experts
# copies of the module's convolution only (expert_scope='conv'): the norm
# and activation run once on the mixed map, and each patch's top-k kernels
# are merged into one (merge_experts, on by default). 'lowrank32' and
# 'lowrank16' are conv-scope experts of rank r: one shared convolution to r
# channels, then per expert a 1x1 convolution r -> C_out. The full MoE
# settings of each are the presets in configs/_base_/moe/ (moe_paper,
# moe_merged, moe_lowrank32, moe_lowrank16). DeepLabv3+ and ENet run
# 'module' only: their MoE layers hold several convolutions, which the
# conv scope cannot take (_archs.py, unavailable).
family = dict(
    description='Formulation: module experts, merged conv experts, '
    'low-rank conv experts (r=32, r=16)',
    default='module',
    baseline=True,
    values=dict(
        module=dict(expert_scope='module'),
        merged=dict(expert_scope='conv'),
        lowrank32=dict(expert_scope='conv', expert_rank=32),
        lowrank16=dict(expert_scope='conv', expert_rank=16)),
    # The paper measured module experts only: no finding to check.
    finding='',
    claims=[])
