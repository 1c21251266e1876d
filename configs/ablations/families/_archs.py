# Architecture table of the ablation families (moe_seg_plugin.sweep.family).
#
# Per architecture key:
#   configs    the paper-default MoE config (8 experts, top-2, 3x3 grid,
#              2Conv-GAP gate, switch loss, one layer at the decoder's last
#              conv) per dataset, relative to the plugin's configs folder:
#              'street' = the generated street scenes (256x256 crops),
#              'cityscapes' / 'bdd100k' = the real data sets (512x1024).
#              A family runs unchanged on each: only this column changes.
#   stride     output stride of the default MoE layer (image pixels per
#              pixel of its output map); converts a family's
#              image_patch_size into the layer's patch_size. The layer's
#              map at the 256x256 street crop is given next to it.
#   placement  dotted paths (in the segmentor) of the MoE layer(s) per
#              placement, as the presets in configs/ablations/placement/
#              chose them: 'decoder' is the MoE config's own layer (the
#              paper default), 'classifier' the head's conv_seg,
#              'encoder' one conv late in the backbone, 'stacked' two
#              layers at the end of the decoder.
#   unavailable  (optional) family settings the architecture cannot have:
#              setting -> value -> reason, the setting 'placement' (a
#              placement name) or a PatchConvMoE setting whose value is a
#              name (e.g. expert_scope='conv'). A sweep skips a family
#              value with such a setting on this architecture, and says
#              why in one line. An entry holds for every placement.
archs = dict(
    deeplabv3plus=dict(
        description='DeepLabv3+ ResNet-18-D8',
        configs=dict(
            street='deeplabv3plus/patchmoe_deeplabv3plus_r18-d8_1xb4-1k_'
            'street-cityscapes-256x256.py',
            cityscapes='deeplabv3plus/patchmoe_deeplabv3plus_r18-d8_4xb2-80k_'
            'cityscapes-512x1024.py',
            bdd100k='deeplabv3plus/patchmoe_deeplabv3plus_r18-d8_4xb2-80k_'
            'bdd100k-512x1024.py'),
        stride=4,  # sep_bottleneck.1 sees the 1/4 map: 64x64 at 256x256
        placement=dict(
            decoder=['decode_head.sep_bottleneck.1'],
            classifier=['decode_head.conv_seg'],
            encoder=['backbone.layer4.1.conv2'],
            stacked=['decode_head.sep_bottleneck.1', 'decode_head.conv_seg']),
        unavailable=dict(
            expert_scope=dict(
                conv='its paper-default MoE layer '
                'decode_head.sep_bottleneck.1 is a depthwise-separable '
                'convolution (two convolutions); conv-scope experts need '
                "one, so there its experts are module copies only "
                "(expert_scope='module')"))),
    pspnet=dict(
        description='PSPNet ResNet-18-D8',
        configs=dict(
            street='pspnet/patchmoe_pspnet_r18-d8_1xb4-1k_'
            'street-cityscapes-256x256.py',
            cityscapes='pspnet/patchmoe_pspnet_r18-d8_4xb2-80k_'
            'cityscapes-512x1024.py',
            bdd100k='pspnet/patchmoe_pspnet_r18-d8_4xb2-80k_'
            'bdd100k-512x1024.py'),
        stride=8,  # bottleneck sees the 1/8 map: 32x32 at 256x256
        placement=dict(
            decoder=['decode_head.bottleneck'],
            classifier=['decode_head.conv_seg'],
            encoder=['backbone.layer4.1.conv2'],
            stacked=['decode_head.bottleneck', 'decode_head.conv_seg'])),
    lraspp=dict(
        description='LR-ASPP MobileNetV3-large-D8',
        configs=dict(
            # The street config scales the scenes up and crops 448x448 (the
            # head's 49x49 pooling window needs about 392 px or more).
            street='lraspp/patchmoe_lraspp_m-v3-d8_1xb4-1k_'
            'street-cityscapes-256x256.py',
            cityscapes='lraspp/patchmoe_lraspp_m-v3-d8_4xb4-160k_'
            'cityscapes-512x1024.py',
            bdd100k='lraspp/patchmoe_lraspp_m-v3-d8_4xb4-160k_'
            'bdd100k-512x1024.py'),
        stride=2,  # conv_ups.conv_up0 sees the 1/2 map: 224x224 at 448x448
        placement=dict(
            decoder=['decode_head.conv_ups.conv_up0'],
            classifier=['decode_head.conv_seg'],
            encoder=['backbone.layer16'],
            stacked=[
                'decode_head.conv_ups.conv_up0', 'decode_head.conv_seg'
            ])),
    unet=dict(
        description='U-Net S5-D16 + FCN head',
        configs=dict(
            street='unet/patchmoe_unet-s5-d16_fcn_1xb4-1k_'
            'street-cityscapes-256x256.py',
            cityscapes='unet/patchmoe_unet-s5-d16_fcn_4xb4-160k_'
            'cityscapes-512x1024.py',
            bdd100k='unet/patchmoe_unet-s5-d16_fcn_4xb4-160k_'
            'bdd100k-512x1024.py'),
        stride=1,  # convs.0 sees the full-resolution map: 256x256
        placement=dict(
            decoder=['decode_head.convs.0'],
            classifier=['decode_head.conv_seg'],
            encoder=['backbone.encoder.4.1.convs.1'],
            stacked=['decode_head.convs.0', 'decode_head.conv_seg'])),
    erfnet=dict(
        description="MMSeg's ERFNet + FCN head",
        configs=dict(
            street='erfnet/patchmoe_erfnet_fcn_1xb4-1k_'
            'street-cityscapes-256x256.py',
            cityscapes='erfnet/patchmoe_erfnet_fcn_4xb4-160k_'
            'cityscapes-512x1024.py',
            bdd100k='erfnet/patchmoe_erfnet_fcn_4xb4-160k_'
            'bdd100k-512x1024.py'),
        stride=2,  # convs.0 sees the 1/2 map: 128x128 at 256x256
        placement=dict(
            decoder=['decode_head.convs.0'],
            classifier=['decode_head.conv_seg'],
            encoder=['backbone.encoder.15.convs_layers.7'],
            stacked=['decode_head.convs.0', 'decode_head.conv_seg'])),
    enet=dict(
        description='ENet (backbone up to bottleneck 5.0 + ENetHead)',
        configs=dict(
            street='enet/patchmoe_enet_1xb4-1k_street-cityscapes-256x256.py',
            cityscapes='enet/patchmoe_enet_4xb4-160k_cityscapes-512x1024.py',
            bdd100k='enet/patchmoe_enet_4xb4-160k_bdd100k-512x1024.py'),
        stride=2,  # bottleneck.ext sees the 1/2 map: 128x128 at 256x256
        placement=dict(
            decoder=['decode_head.bottleneck.ext'],
            encoder=['backbone.stage3.7.ext'],
            # ENet's decoder is split between the backbone (stage 4) and
            # the head (bottleneck 5.1): its last two decoder bottlenecks.
            stacked=['backbone.stage4.1.ext', 'decode_head.bottleneck.ext']),
        # Settings an architecture cannot have, with the reason: a sweep
        # skips them there (and says so).
        unavailable=dict(
            placement=dict(
                classifier="ENet's classifier (decode_head.conv_seg) is a "
                'transposed convolution, which PatchConvMoE does not '
                'replace'),
            expert_scope=dict(
                conv="its MoE layers (the bottlenecks' ext branches, e.g. "
                'decode_head.bottleneck.ext) hold three convolutions each; '
                'conv-scope experts need one, so its experts are module '
                "copies only (expert_scope='module')"))),
)
