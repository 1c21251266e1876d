# Shared vs independent experts: the 8 routed experts alone (the paper
# default), or with one always-on shared expert added to every patch's
# mixture with weight 1.
family = dict(
    description='Independent experts vs one added shared expert',
    default='independent',
    baseline=True,
    values=dict(
        independent=dict(num_shared_experts=0),
        shared1=dict(num_shared_experts=1)),
    finding='shared experts did worse than independent ones',
    claims=[
        dict(
            text='shared experts worse than independent ones',
            value='independent',
            metric='mIoU',
            best='max')
    ])
