# Random vs upcycled experts. 'random' gives every expert fresh independent
# weights (the paper default). 'upcycled' starts from the same seed's
# trained stock baseline (from_baseline: the sweep runs it first and loads
# its last checkpoint as load_from): every other weight is the baseline's,
# and every expert starts from the replaced conv's trained weights plus 1 %
# relative noise (expert_init='copy', init_noise 0.01). The upcycled run
# then trains a full schedule on top of the baseline's.
family = dict(
    description='Random vs upcycled (from the stock baseline) experts',
    default='random',
    baseline=True,
    values=dict(
        random=dict(expert_init='random'),
        upcycled=dict(expert_init='copy', from_baseline=True)),
    finding='',
    claims=[])
