# Gate family: the three gates of the paper, each mapping a patch to N
# logits. 2Conv-GAP is Conv(C, 8) -> BN -> Conv(8, N) -> GAP with 1x1
# kernels, as in the paper-default config.
family = dict(
    description='Gate: GAP-Linear, Conv-GAP, 2Conv-GAP',
    default='double_conv_gap',
    baseline=True,
    values=dict(
        gap_linear=dict(gate=dict(type='GAPLinearGate')),
        conv_gap=dict(gate=dict(type='ConvGAPGate', kernel_size=1)),
        double_conv_gap=dict(
            gate=dict(
                type='DoubleConvGAPGate', hidden_channels=8,
                kernel_size=1))),
    finding='2Conv-GAP best gate',
    claims=[
        dict(
            text='2Conv-GAP best gate',
            value='double_conv_gap',
            metric='mIoU',
            best='max')
    ])
