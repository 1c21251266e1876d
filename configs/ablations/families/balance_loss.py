# Balancing-loss family. Every loss keeps the paper config's
# loss_weight=0.01, so the losses are compared at one weight (ST-MoE uses
# 0.001 for its z-loss, but next to a balancing loss; here it is the only
# routing term). The load loss is the smooth load estimator of noisy top-k
# and needs noisy gating (noise_std 1.0, training only); the others route
# without noise as the paper default does.
family = dict(
    description='Balancing loss (loss_weight 0.01)',
    default='switch',
    baseline=True,
    values=dict(
        none=dict(balance_loss=None),
        importance=dict(
            balance_loss=dict(type='MoEImportanceLoss', loss_weight=0.01)),
        load=dict(
            balance_loss=dict(type='MoELoadLoss', loss_weight=0.01),
            noisy_gating=True),
        switch=dict(
            balance_loss=dict(type='MoESwitchLoss', loss_weight=0.01)),
        entropy=dict(
            balance_loss=dict(type='MoEEntropyLoss', loss_weight=0.01)),
        zloss=dict(balance_loss=dict(type='MoEZLoss', loss_weight=0.01))),
    finding='switch loss: the most uniform usage and the least collapse; '
    'importance loss: a dominant expert',
    claims=[
        dict(
            text='switch loss gives the most uniform expert usage',
            value='switch',
            metric='usage_entropy',
            best='max'),
        dict(
            text='switch loss collapses least',
            value='switch',
            metric='dominant_share',
            best='min'),
        dict(
            text='importance loss leaves a dominant expert',
            value='importance',
            metric='dominant_share',
            best='max'),
    ])
