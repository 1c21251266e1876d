# Number-of-experts family: routed experts N at the paper's top-2 routing.
# The paper uses N = 8 and states no finding on N; the table shows the
# accuracy against the parameter cost.
family = dict(
    description='Number of routed experts N (top-2)',
    default='n8',
    baseline=True,
    values=dict(
        n2=dict(num_experts=2),
        n4=dict(num_experts=4),
        n8=dict(num_experts=8),
        n16=dict(num_experts=16)),
    finding='',
    claims=[])
