"""MMSeg's ``SegLocalVisualizer`` with the one fix its dataset browser needs.

MMSeg's ``browse_dataset.py`` hands the visualizer an image made by
``tensor.permute(1, 2, 0).numpy()[..., [2, 1, 0]]``, whose channels are not
interleaved in memory; the label boxes ``_draw_sem_seg`` draws with
``cv2.rectangle`` then fail with "Layout of the output array img is
incompatible with cv::Mat" on every OpenCV release (open-mmlab/
mmsegmentation#3405, stock configs too). The plugin's configs use this
subclass, which makes the image C-contiguous first and changes nothing else.
"""
import numpy as np
from mmseg.registry import VISUALIZERS
from mmseg.visualization import SegLocalVisualizer


@VISUALIZERS.register_module()
class ContiguousSegLocalVisualizer(SegLocalVisualizer):
    """``SegLocalVisualizer`` that accepts images of any memory layout."""

    def add_datasample(self, name: str, image: np.ndarray, *args,
                       **kwargs) -> None:
        """Draw as ``SegLocalVisualizer.add_datasample`` does.

        Args:
            name (str): The image identifier.
            image (np.ndarray): The image (H, W, 3), RGB, any strides.
            *args, **kwargs: Passed on unchanged.
        """
        super().add_datasample(name, np.ascontiguousarray(image), *args,
                               **kwargs)
