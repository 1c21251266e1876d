# Top-k family: experts per patch. At top-1 the renormalised weight of the
# one chosen expert is always 1, so the gate would learn from the balancing
# loss alone; top1 therefore weights it by its softmax probability
# (weighting='gate_prob', Switch Transformer), as the README recommends.
# top2 and top4 keep the paper's renormalised mixing.
family = dict(
    description='Experts per patch (top-k routing)',
    default='top2',
    baseline=True,
    values=dict(
        top1=dict(top_k=1, weighting='gate_prob'),
        top2=dict(top_k=2),
        top4=dict(top_k=4)),
    finding='top-2 best',
    claims=[dict(text='top-2 best', value='top2', metric='mIoU', best='max')])
