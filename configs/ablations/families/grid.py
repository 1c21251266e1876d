# Grid family: how the replaced layer's output is cut into patches.
#
# grid1x1..grid4x4 cut it into a fixed number of patches (they grow with the
# image). patch48px / patch96px keep the patch size fixed instead (the count
# grows with the image): the sizes are in *image* pixels (image_patch_size),
# converted per architecture into the layer's output pixels by the arch
# table's stride, because the default MoE layers see maps from 1/8 (PSPNet,
# 32x32 at the 256x256 street crop) to full resolution (U-Net, 256x256): one
# size in output pixels would mean 1 patch on one architecture and 256 on
# another. 96 px is about the patch of the paper-best 3x3 grid at the street
# crop (256 / 3 = 85 px: 3x3 patches of 96, 96, 64 px there, 3x6 on a whole
# 256x512 scene, 6x11 on a 512x1024 Cityscapes crop); 48 px is half of it
# (6x6 at the street crop). Both are multiples of every stride (1, 2, 4, 8).
family = dict(
    description='Patch grid (rows x cols) or a fixed patch size in pixels',
    default='grid3x3',
    baseline=True,
    values=dict(
        grid1x1=dict(grid=(1, 1)),
        grid2x2=dict(grid=(2, 2)),
        grid3x3=dict(grid=(3, 3)),
        grid4x4=dict(grid=(4, 4)),
        patch48px=dict(image_patch_size=48),
        patch96px=dict(image_patch_size=96)),
    finding='3x3 grid best',
    claims=[
        dict(text='3x3 grid best', value='grid3x3', metric='mIoU', best='max')
    ])
