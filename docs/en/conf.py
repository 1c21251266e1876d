"""Sphinx configuration of the moe_seg_plugin docs (MyST Markdown, as MMSeg).

The source folder is the repository root, so that README.md and the
configs/<arch>/README.md pages belong to the same site as docs/en and every
link between them is checked. Build from the repository root:

    sphinx-build -W -b html -c docs/en . docs/_build/html
"""
project = 'moe_seg_plugin'
author = 'moe_seg_plugin contributors'
copyright = '2026, moe_seg_plugin contributors'

extensions = ['myst_parser']
source_suffix = {'.md': 'markdown'}
root_doc = 'docs/en/index'
# Only these files are pages; the folders below are not even walked.
include_patterns = ['README.md', 'docs/en/**', 'configs/*/README.md']
exclude_patterns = [
    '.*', '_build', 'docs/_build', 'build', 'dist', 'data', 'work_dirs',
    '*.egg-info', 'moe_seg_plugin', 'moe_seg_plugin_startup', 'tests',
    'tools', 'configs/_base_', 'configs/ablations'
]
# Links to headings (file.md#a-heading) resolve down to ### headings, with
# GitHub's anchor names.
myst_heading_anchors = 3
html_theme = 'alabaster'
