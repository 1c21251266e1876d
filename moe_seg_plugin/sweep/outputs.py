"""The files of a sweep report: table.md, table.csv and the plots.

:mod:`.report` makes the table's rows, :mod:`.plots` draws from them; this
module reads a sweep directory and writes both, so neither of the two
imports the other's caller.
"""
import os.path as osp
from typing import List, Optional

from .files import make_folder
from .plots import write_plots
from .report import check_ended, load_runs, markdown, summarise, write_csv


def write_tables(sweep_dir: str, out_dir: Optional[str] = None,
                 plots: bool = True) -> List[str]:
    """Write table.md, table.csv and (by default) the plots of a sweep.

    Args:
        sweep_dir (str): The sweep directory.
        out_dir (str, optional): Where they go (created). Default:
            ``sweep_dir``.
        plots (bool): Also draw the PNG plots (linked from table.md).

    Returns:
        list[str]: The files written, table.md first.

    Raises:
        SetupError: If ``sweep_dir`` is not a sweep directory, no run of
            it has a readable row yet, or ``out_dir`` cannot be a folder.
    """
    found = load_runs(sweep_dir)
    check_ended(sweep_dir, found)
    meta, rows = found.meta, found.rows
    out_dir = out_dir or sweep_dir
    make_folder(out_dir, '--out-dir')
    table = summarise(rows, meta['values'], meta['seeds'], meta['archs'],
                      meta['runs'], found.broken)
    drawn = write_plots(sweep_dir, out_dir, rows, table) if plots else {}
    md_path = osp.join(out_dir, 'table.md')
    with open(md_path, 'w', encoding='utf-8') as file:
        file.write(markdown(meta, table, drawn))
    csv_path = write_csv(osp.join(out_dir, 'table.csv'), table)
    pngs = [osp.join(out_dir, n) for names in drawn.values() for n in names]
    return [md_path, csv_path] + pngs
