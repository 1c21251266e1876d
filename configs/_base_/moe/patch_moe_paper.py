# PatchConvMoE settings of the paper's best configuration (Pavlitska et al.,
# CVPR 2026 workshop SAIAD): 8 experts, top-2 routing, a 3x3 patch grid, the
# 2Conv-GAP gate, one MoE layer at the decoder's last convolution (the
# PatchMoEHead default target), and a switch balancing loss. A MoE config
# uses it as `moe=_base_.moe_paper` and may override any key.
moe_paper = dict(
    num_experts=8,
    top_k=2,
    # Top-2 weights renormalised to sum to 1 (the paper's mixing). With
    # top_k=1 use weighting='gate_prob' (Switch Transformer): renormalised
    # top-1 weights are always 1 and the gate learns from the balancing
    # loss alone.
    weighting='renormalized',
    grid=(3, 3),
    gate=dict(type='DoubleConvGAPGate', hidden_channels=8, kernel_size=1),
    balance_loss=dict(type='MoESwitchLoss', loss_weight=0.01),
    expert_init='random')
# Experts that no patch chose in a step get no gradient; DDP must be told.
find_unused_parameters = True
# Routing statistics of every PatchConvMoE layer (usage, entropy, dead
# experts, importance CV^2, gate entropy; P(expert | class) at validation),
# logged at the logger interval and appended to <work_dir>/routing_stats.json.
# The plugin's tools give every run the other three; listed here so that
# MMSeg's own tools get them too: refusal of a grid or patch size that does
# not fit a MoE layer's map at the crop size (before the first step), exact
# --resume (random streams saved with each checkpoint) and refusal of a
# checkpoint of another model.
custom_hooks = [
    dict(type='RoutingStatsHook'),
    dict(type='GridCheckHook'),
    dict(type='RandomStateHook'),
    dict(type='CheckpointFitHook')
]
