# Gate family: the three gates of the paper, each mapping a patch to N
# logits. 2Conv-GAP is Conv(C, 8) -> BN -> Conv(8, N) -> GAP with 1x1
# kernels, as in the paper-default config. Conv-GAP uses a 3x3 kernel: with
# a 1x1 kernel, conv-then-pool equals pool-then-linear, and since a 1x1
# Conv2d and a Linear of the same fan-in draw the same initial weights,
# it would train exactly as GAP-Linear (measured: identical runs).
family = dict(
    description='Gate: GAP-Linear, Conv-GAP, 2Conv-GAP',
    default='double_conv_gap',
    baseline=True,
    values=dict(
        gap_linear=dict(gate=dict(type='GAPLinearGate')),
        conv_gap=dict(gate=dict(type='ConvGAPGate', kernel_size=3)),
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
