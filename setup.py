"""Install script of moe_seg_plugin.

All version pins of the project live here (``INSTALL_REQUIRES`` and ``EXTRAS``).
Why each pin exists is said next to it; the README's Quick start installs
``.[lite]`` (mmcv-lite, no compiled ops, installs in seconds) and the tests
``.[lite,tests]``. Users who have or build full mmcv install ``.[full]``;
users of mmpretrain backbones (ConvNeXt, ResNet, ...) install
``.[mmpretrain]`` instead of ``.[lite]``; ONNX export needs ``.[export]``
(in ``tests`` too).
"""
import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

INSTALL_REQUIRES = [
    # The torch releases the plugin is tested with. Which one an install
    # takes is chosen by the extras below (lite: 2.13.0, mmpretrain: 2.14.1).
    'torch>=2.1,<=2.14.1',
    'mmengine==0.10.7',
    'mmsegmentation==1.2.2',
    # mmpretrain stays installed for its backbones' configs; its model zoo
    # needs torchvision, so the plugin never imports mmpretrain.models.
    'mmpretrain==1.2.0',
    # mmseg.models imports mmseg's multimodal utilities unconditionally.
    'ftfy>=6',
    'regex',
    # mmengine resolves ``mmseg::`` configs through pkg_resources, which
    # setuptools 81 removed.
    'setuptools>=61,<81',
    'numpy',
    # OpenCV 5.0 is the newest release checked with the whole stack (the
    # test suite and MMSeg's shipped tools, tests/e2e/test_mmseg_tools.py);
    # 5.1 is not released yet, so it stays out until checked. MMSeg's
    # browse_dataset.py fails in cv2.rectangle on every OpenCV from 4.5.5 to
    # 5.0 (mmseg#3405, a non-contiguous image), which no pin fixes: the
    # plugin's configs use ContiguousSegLocalVisualizer instead.
    'opencv-python>=4.8,<5.1',
    # tools/analysis_tools/sweep.py submits runs to Slurm through submitit (pure Python);
    # 1.5 is the line tested here.
    'submitit>=1.5,<2',
]

EXPORT = ['onnx>=1.17,<1.24', 'onnxscript>=0.5,<0.8',
          'onnxruntime>=1.20,<1.33']

# The docs (docs/en, MyST Markdown) as MMSeg builds its own: Sphinx with
# myst-parser. myst-parser 5 is the line that takes markdown-it-py 4, the
# release rich (through mmengine) installs; 4.x would pull markdown-it-py 3.
# It needs Sphinx 8 or 9; Sphinx 9.0 and myst-parser 5.2 are the releases
# tested (tests/docs/test_docs.py); newer majors are left out until checked.
DOCS = ['sphinx>=8,<10', 'myst-parser>=5,<6']

EXTRAS = {
    # mmsegmentation 1.2.2 refuses mmcv >= 2.2.0.
    # torch <= 2.13.0: 2.13.0 is the newest release these machines hold as a
    # CPU wheel; a range that admits newer releases pulls a multi-GB CUDA
    # build. PyPI's torchvision does not import beside it, so mmpretrain's
    # model zoo (mmpretrain.models) is out of reach with this extra.
    'lite': ['mmcv-lite>=2.0.0rc4,<2.2.0', 'torch>=2.1,<=2.13.0'],
    # mmpretrain backbones (`type='mmpretrain.ConvNeXt'`): mmpretrain.models
    # imports torchvision, whose registry releases each need one exact torch.
    # 2.14.1 + 0.29.1 is the newest pair these machines hold (a CUDA build,
    # about 5.5 GB, which also runs on the CPU) and the pair tested with the
    # plugin (tests/e2e/test_mmpretrain_backbones.py). Install it instead of
    # `lite`, not beside it: their torch pins exclude each other.
    'mmpretrain': ['mmcv-lite>=2.0.0rc4,<2.2.0', 'torch==2.14.1',
                   'torchvision==0.29.1'],
    'full': ['mmcv>=2.0.0rc4,<2.2.0'],
    # tools/deployment/export.py: torch's dynamo ONNX exporter needs onnxscript (and
    # onnx); onnxruntime checks the graph. The versions tested with it
    # (tests/e2e/test_export.py); newer majors are left out until checked.
    'export': EXPORT,
    'docs': DOCS,
    # tests/docs/test_docs.py builds the docs, so the tests need DOCS too.
    # pytest.ini runs the suite on two pytest-xdist workers (CI's two
    # cores); 3.x is the line tested here (3.8).
    'tests': ['pytest>=7', 'pytest-xdist>=3.5,<4'] + EXPORT + DOCS,
}


STARTUP_PTH = 'moe_seg_plugin_startup.pth'


class BuildPyWithConfigs(build_py):
    """Adds two things to the built package.

    * ``moe_seg_plugin_startup.pth`` at the top of site-packages: Python runs
      it at start-up, so MMSeg's own tools work with mmcv-lite and read
      ``moe_seg_plugin::`` configs (see moe_seg_plugin_startup).
    * configs/, tools/ and model-index.yml inside the package's .mim
      folder (as MMSeg does), so ``moe_seg_plugin::`` configs resolve from a
      non-editable install too and ``mim train/test/search moe_seg_plugin``
      find the tools and the model index. An editable install reads configs
      from the checkout; mim cannot find an editable install's folder.
    """

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            # An editable wheel is made of what setuptools' editable_wheel
            # unpacks into the install command's folder; the build folder
            # only feeds its module finder, which ignores a .pth.
            unpacked_wheel = self.distribution.get_command_obj(
                'install').install_lib
            self.copy_file(STARTUP_PTH,
                           os.path.join(unpacked_wheel, STARTUP_PTH))
            return
        self.copy_file(STARTUP_PTH, os.path.join(self.build_lib, STARTUP_PTH))
        mim = os.path.join(self.build_lib, 'moe_seg_plugin', '.mim')
        for folder in ('configs', 'tools'):
            shutil.copytree(folder, os.path.join(mim, folder),
                            dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns('__pycache__'))
        self.copy_file('model-index.yml',
                       os.path.join(mim, 'model-index.yml'))


setup(
    name='moe_seg_plugin',
    version='0.1.0',
    description='Patch-wise sparse mixture-of-experts layers (PatchConvMoE) '
    'for CNN semantic segmentation in MMSegmentation',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(
        include=['moe_seg_plugin', 'moe_seg_plugin.*',
                 'moe_seg_plugin_startup']),
    python_requires='>=3.9',
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    license='Apache-2.0',
    cmdclass={'build_py': BuildPyWithConfigs},
)
