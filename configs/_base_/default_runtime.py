# MMSeg's runtime defaults, with the visualizer that also draws the images
# of MMSeg's browse_dataset.py (see moe_seg_plugin/visualization/
# seg_visualizer.py).
_base_ = 'mmseg::_base_/default_runtime.py'
visualizer = dict(type='ContiguousSegLocalVisualizer')
