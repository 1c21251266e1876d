# Placement family: where the MoE layer sits, each with the paper-default
# MoE settings. The paths per architecture are in _archs.py ('placement'):
# decoder = the decoder's last conv (the paper default, the MoE config as
# it is), classifier = the head's conv_seg (none for ENet, whose classifier
# is a transposed convolution), encoder = one conv late in the backbone,
# stacked = two layers at the end of the decoder.
family = dict(
    description='Placement: decoder, classifier, encoder, two stacked',
    default='decoder',
    baseline=True,
    values=dict(
        decoder=dict(placement='decoder'),
        classifier=dict(placement='classifier'),
        encoder=dict(placement='encoder'),
        stacked=dict(placement='stacked')),
    finding="one MoE layer at the decoder's last convolution best; "
    'stacking several MoE layers trains unstably',
    claims=[
        dict(
            text="one MoE layer at the decoder's last convolution best",
            value='decoder',
            metric='mIoU',
            best='max'),
        # Unstable training: the widest spread of mIoU over the seeds.
        dict(
            text='stacking several MoE layers trains unstably',
            value='stacked',
            metric='mIoU_std',
            best='max'),
    ])
