"""A data file that cannot be read is named.

A damaged image or label ends deep in PIL or OpenCV (``OSError: image file
is truncated``) with no word of which file; in a data loader worker the
error reaches the main process as text only. :func:`name_failing_samples`
makes MMEngine's pipeline (``Compose``, which every dataset's pipeline is)
add a note to such an error naming the transform and the sample's files
(``img_path``, ``seg_map_path``); Python prints notes with the traceback,
and a worker's re-raised error carries them in its text.
:func:`unreadable_data_file` turns an error with that note into one
:class:`SetupError` line for the tools.
"""
import re
from typing import Optional

from .errors import SetupError

#: Start of the note added to an error raised by a pipeline transform.
NOTE = 'moe_seg_plugin: data pipeline failed at'
#: The note: transform, then the sample's files (``None`` when absent).
_NOTE = re.compile(re.escape(NOTE) + r" (?P<transform>\w+) on img_path="
                   r"(?P<img>'[^']*'|None), seg_map_path="
                   r"(?P<seg>'[^']*'|None)")
#: Loading transforms and the file each reads.
READS = {'LoadImageFromFile': 'img', 'LoadAnnotations': 'seg'}
#: Errors PIL, OpenCV and mmcv raise for a file that does not decode.
DECODE_ERRORS = (OSError, ValueError, TypeError, AttributeError)


def sample_note(transform: object, data: dict) -> str:
    """The note naming a failed transform and the sample it ran on."""
    return (f'{NOTE} {type(transform).__name__} on '
            f'img_path={data.get("img_path")!r}, '
            f'seg_map_path={data.get("seg_map_path")!r}')


def name_failing_samples() -> None:
    """Make MMEngine's ``Compose`` note the transform and sample of an error
    raised inside a pipeline (idempotent)."""
    from mmengine.dataset import base_dataset
    compose = base_dataset.Compose
    if getattr(compose.__call__, 'names_failing_samples', False):
        return

    def __call__(self, data: dict) -> Optional[dict]:
        sample = {key: data.get(key) for key in ('img_path', 'seg_map_path')}
        for transform in self.transforms:
            try:
                data = transform(data)
            except Exception as exc:
                if not any(NOTE in note
                           for note in getattr(exc, '__notes__', ())):
                    exc.add_note(sample_note(transform, sample))
                raise
            if data is None:  # MMEngine: the dataset picks another sample
                return None
        return data

    __call__.names_failing_samples = True
    __call__.__doc__ = compose.__call__.__doc__
    compose.__call__ = __call__


def unreadable_data_file(exc: BaseException) -> Optional[SetupError]:
    """A data file that a loading transform could not decode, as one line.

    Args:
        exc: An error from a data pipeline, raised in this process (with
            the note) or re-raised from a data loader worker (the note in
            its text).

    Returns:
        SetupError or None: Naming the file and the reason; None for other
        errors (a bug in a transform keeps its traceback).
    """
    if not isinstance(exc, DECODE_ERRORS):
        return None
    text = '\n'.join([str(exc), *getattr(exc, '__notes__', ())])
    found = _NOTE.search(text)
    if found is None or found['transform'] not in READS:
        return None
    path = found[READS[found['transform']]]
    if path == 'None':
        return None
    key = 'img_path' if READS[found['transform']] == 'img' else 'seg_map_path'
    return SetupError(
        f'data file {path} ({key}) could not be read: {_reason(exc, text)}. '
        f'The file is damaged or not an image: replace it, or regenerate '
        f'the data set')


def _reason(exc: BaseException, text: str) -> str:
    """The decoder's own message (the last line of a worker's traceback)."""
    if 'in DataLoader worker process' not in text:
        return f'{type(exc).__name__}: {exc}'.rstrip('.')
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and NOTE not in line]
    return lines[-1].rstrip('.')
