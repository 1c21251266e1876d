"""The docs: README.md, docs/en/** and configs/<arch>/README.md.

Checked here: the Sphinx build (warnings are errors), every link between
the pages (files and heading anchors), every tool command in them (the tool
exists and knows each ``--flag`` written after it), the README's size, and
that each configs/<arch>/README.md lists exactly its folder's configs with
model-index.yml's figures. Each checker is also shown a small bad example,
so that a check that could never fail would be noticed.
"""
import ast
import pathlib
import re
import shlex
import subprocess
import sys
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]

#: The README is a router into the docs; these keep it one.
README_MAX_LINES = 200
README_MAX_WIDTH = 100
#: Heading levels that get anchors (conf.py's myst_heading_anchors).
ANCHOR_LEVELS = 3
#: Sections of a configs/<arch>/README.md, in order (MMSeg's project
#: README layout).
CONFIG_README_SECTIONS = ['Description', 'Usage', 'Results', 'Citation']

FENCE = re.compile(r'^\s*(```+|~~~+)\s*([^\s`]*)')
HEADING = re.compile(r'^(#{1,6})\s+(.*?)\s*#*\s*$')
LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
CODE_SPAN = re.compile(r'(`+)(.+?)\1')
EXTERNAL = re.compile(r'^[a-z][a-z0-9+.-]*:', re.I)
TOOL = re.compile(r'^tools/[\w/.-]+\.(py|sh)$')
FLAG = re.compile(r'--[A-Za-z][\w-]*')
SEPARATORS = {'&&', '||', '|', ';'}

#: A tool command found in a page: (line number, tool path, its flags).
Call = Tuple[int, str, List[str]]


def markdown_files() -> List[pathlib.Path]:
    """Every page: README.md, docs/**/*.md, configs/*/README.md."""
    return ([ROOT / 'README.md'] + sorted((ROOT / 'docs').rglob('*.md')) +
            sorted((ROOT / 'configs').glob('*/README.md')))


def split_fences(text: str) -> Tuple[List[Tuple[int, str]],
                                     List[Tuple[int, str, str]]]:
    """Prose lines ``(line number, line)`` and fenced blocks
    ``(first line number, language, body)`` of a Markdown text."""
    prose, blocks = [], []
    fence, language, body, start = None, '', [], 0
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None:
            if match:
                fence, language = match.group(1), match.group(2)
                body, start = [], number
            else:
                prose.append((number, line))
        elif re.fullmatch(f'{re.escape(fence[0])}{{{len(fence)},}}',
                          line.strip()):
            blocks.append((start, language, '\n'.join(body)))
            fence = None
        else:
            body.append(line)
    return prose, blocks


def slug(title: str) -> str:
    """A heading's anchor as MyST (and GitHub) name it."""
    title = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', title)
    cleaned = re.sub(r'[^\w\u4e00-\u9fff\- ]', '', title.strip().lower())
    return cleaned.replace(' ', '-')


def anchors(text: str, levels: int = ANCHOR_LEVELS) -> Set[str]:
    """The anchors of a page's headings down to ``levels`` (a repeated
    heading gets -1, -2, ... as on GitHub and in MyST)."""
    found: Dict[str, int] = {}
    names = set()
    for _, line in split_fences(text)[0]:
        match = HEADING.match(line)
        if not match or len(match.group(1)) > levels:
            continue
        name = slug(match.group(2))
        if name in found:
            found[name] += 1
            name = f'{name}-{found[name]}'
        else:
            found[name] = 0
        names.add(name)
    return names


def links(text: str) -> Iterator[Tuple[int, str]]:
    """``(line number, target)`` of every link and image outside code."""
    for number, line in split_fences(text)[0]:
        # Code spans hold no links; the text of [`x`](y) stays a link.
        line = CODE_SPAN.sub(lambda m: 'x' * len(m.group(2)), line)
        for match in LINK.finditer(line):
            yield number, match.group(1)


def link_problems(page: pathlib.Path, text: Optional[str] = None) -> List[str]:
    """What is wrong with a page's local links: a file that does not
    exist, or an anchor that is no heading of its page."""
    text = page.read_text(encoding='utf-8') if text is None else text
    problems = []
    for number, target in links(text):
        if EXTERNAL.match(target):
            continue
        path, _, anchor = target.partition('#')
        where = f'{page.relative_to(ROOT)}:{number}: {target}'
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            problems.append(f'{where}: no such file')
            continue
        if anchor:
            if linked.suffix != '.md':
                problems.append(f'{where}: an anchor into a non-Markdown file')
            elif anchor not in anchors(
                    linked.read_text(encoding='utf-8') if path else text):
                problems.append(f'{where}: no heading with that anchor '
                                f'(down to level {ANCHOR_LEVELS})')
    return problems


def tool_flags(tool: pathlib.Path) -> Set[str]:
    """The options a tool takes.

    A Python tool: the option strings of its ``add_argument`` calls (parsed,
    not run). A shell script: the flags it names itself, plus those of the
    one Python tool it hands its arguments to, if it names exactly one.
    """
    if tool.suffix == '.py':
        tree = ast.parse(tool.read_text(encoding='utf-8'))
        # `add = parser.add_argument` makes `add('--x')` an option too.
        adders = {
            target.id
            for node in ast.walk(tree) if isinstance(node, ast.Assign)
            and getattr(node.value, 'attr', None) == 'add_argument'
            for target in node.targets if isinstance(target, ast.Name)
        }
        flags = {'--help'}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and (
                    getattr(node.func, 'attr', None) == 'add_argument'
                    or getattr(node.func, 'id', None) in adders):
                flags.update(arg.value for arg in node.args
                             if isinstance(arg, ast.Constant)
                             and str(arg.value).startswith('--'))
        return flags
    script = tool.read_text(encoding='utf-8')
    flags = set(FLAG.findall(script))
    called = sorted(set(re.findall(r'([\w.-]+\.py)\b', script)))
    if len(called) == 1 and (tool.parent / called[0]).is_file():
        flags |= tool_flags(tool.parent / called[0])
    return flags


def commands(text: str) -> Iterator[Call]:
    """``(line number, tool, flags)`` for every ``python tools/...py`` and
    ``bash tools/...sh`` in a page's shell blocks and code spans."""
    prose, blocks = split_fences(text)
    sources = [(start, body) for start, language, body in blocks
               if language in ('', 'bash', 'shell', 'sh', 'console')]
    for number, line in prose:
        sources += [(number, span.group(2))
                    for span in CODE_SPAN.finditer(line)
                    if re.match(r'(python|bash) tools/', span.group(2))]
    for start, body in sources:
        for offset, command in _logical_lines(body):
            yield from _tool_calls(start + offset, command)


def _logical_lines(body: str) -> Iterator[Tuple[int, str]]:
    """Lines of a shell block with ``\\`` continuations joined."""
    pending, first = '', 0
    for offset, line in enumerate(body.splitlines()):
        if not pending:
            first = offset
        if line.rstrip().endswith('\\'):
            pending += line.rstrip()[:-1] + ' '
            continue
        yield first, pending + line
        pending = ''
    if pending:
        yield first, pending


def _tool_calls(number: int, command: str) -> Iterator[Call]:
    try:
        tokens = shlex.split(command, comments=True)
    except ValueError:
        tokens = command.split()
    tool, flags, depth = None, [], 0
    for index, token in enumerate(tokens):
        # '|' inside [...] is a usage alternative, not a pipe.
        if token in SEPARATORS and depth <= 0:
            if tool:
                yield number, tool, flags
            tool, flags, depth = None, [], 0
            continue
        depth += token.count('[') - token.count(']')
        if tool is None:
            previous = tokens[index - 1] if index else ''
            if TOOL.match(token) and previous in ('python', 'python3',
                                                  'bash', 'sh'):
                tool = token
        else:
            flag = FLAG.match(token.lstrip('[('))
            if flag:
                flags.append(flag.group(0))
    if tool:
        yield number, tool, flags


def command_problems(page: pathlib.Path,
                     text: Optional[str] = None) -> List[str]:
    """Tools that do not exist and flags a tool does not know."""
    text = page.read_text(encoding='utf-8') if text is None else text
    problems = []
    for number, tool, flags in commands(text):
        where = f'{page.relative_to(ROOT)}:{number}: {tool}'
        path = ROOT / tool
        if not path.is_file():
            problems.append(f'{where}: no such tool')
            continue
        known = tool_flags(path)
        problems += [f'{where}: unknown flag {flag}' for flag in flags
                     if flag not in known]
    return problems


def readme_problems(text: str) -> List[str]:
    """The README stays a router: short, and no line wider than 100."""
    lines = text.splitlines()
    problems = []
    if len(lines) > README_MAX_LINES:
        problems.append(f'README.md has {len(lines)} lines, more than '
                        f'{README_MAX_LINES}: move the detail into docs/')
    problems += [
        f'README.md:{number}: {len(line)} characters, more than '
        f'{README_MAX_WIDTH}' for number, line in enumerate(lines, 1)
        if len(line) > README_MAX_WIDTH
    ]
    return problems


def section(text: str, title: str) -> str:
    """The body of a page's ``## title`` section."""
    match = re.search(rf'^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)', text,
                      re.M | re.S)
    return match.group(1) if match else ''


def config_readme_problems(folder: str, text: str, configs: List[str],
                           index: Dict[str, dict]) -> List[str]:
    """A configs/<arch>/README.md against its folder.

    Args:
        folder (str): The folder's name ('pspnet').
        text (str): The README.
        configs (list[str]): The folder's config files ('a.py').
        index (dict): model-index.yml's entries by ``Config`` path.

    Returns:
        list[str]: Missing sections, configs the Results table lacks or
        lists that are not in the folder, and Params / FLOPs that differ
        from model-index.yml's.
    """
    where = f'configs/{folder}/README.md'
    problems = []
    titles = [m.group(1).strip() for m in re.finditer(r'^## (.+)$', text,
                                                      re.M)]
    ordered = [title for title in titles if title in CONFIG_README_SECTIONS]
    if ordered != CONFIG_README_SECTIONS:
        problems.append(f'{where}: sections {titles}, expected '
                        f'{CONFIG_README_SECTIONS} in this order')
    results = section(text, 'Results')
    listed = [target for _, target in links(results)
              if target.endswith('.py')]
    if sorted(listed) != sorted(configs):
        problems.append(
            f'{where}: the Results table lists {sorted(set(listed))}, the '
            f'folder holds {sorted(configs)}; missing '
            f'{sorted(set(configs) - set(listed))}, not in the folder '
            f'{sorted(set(listed) - set(configs))}')
    table = [line for line in results.splitlines() if line.startswith('|')]
    if not table:
        return problems + [f'{where}: no Results table']
    header = [cell.strip() for cell in table[0].strip('|').split('|')]
    columns = {'Parameters (M)': 'Params (M)', 'FLOPs (G)': 'FLOPs (G)'}
    for row in table[2:]:
        cells = [cell.strip() for cell in row.strip('|').split('|')]
        found = [t for _, t in links(cells[0])]
        entry = index.get(f'configs/{folder}/{found[0]}') if found else None
        if entry is None:
            continue
        for key, column in columns.items():
            if column not in header:
                problems.append(f'{where}: no {column} column')
                continue
            cell = cells[header.index(column)]
            if float(cell) != pytest.approx(entry['Metadata'][key], abs=5e-4):
                problems.append(f'{where}: {found[0]}: {column} {cell}, '
                                f"model-index.yml {entry['Metadata'][key]}")
    return problems


def folder_configs(folder: pathlib.Path) -> List[str]:
    return sorted(p.name for p in folder.glob('*.py')
                  if not p.name.startswith('_'))


def architecture_folders() -> List[pathlib.Path]:
    return sorted(p for p in (ROOT / 'configs').iterdir() if p.is_dir()
                  and p.name not in ('_base_', 'ablations'))


def model_index() -> Dict[str, dict]:
    with open(ROOT / 'model-index.yml', encoding='utf-8') as f:
        return {m['Config']: m for m in yaml.safe_load(f)['Models']}


def sphinx_build(source: pathlib.Path, conf: pathlib.Path,
                 out: pathlib.Path) -> subprocess.CompletedProcess:
    """``sphinx-build -W --keep-going -b html`` (warnings are errors)."""
    return subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-b', 'html',
         '-q', '-c', str(conf), str(source), str(out)],
        cwd=source, capture_output=True, text=True, timeout=600)


# The docs as they are.


def _needs_sphinx():
    try:
        import myst_parser  # noqa: F401
        import sphinx  # noqa: F401
    except ImportError as error:
        pytest.fail(f'{error}: the docs need the docs extra (in tests too): '
                    'pip install -e ".[lite,tests]"')


def test_the_docs_build_without_warnings(tmp_path):
    _needs_sphinx()
    built = sphinx_build(ROOT, ROOT / 'docs' / 'en', tmp_path / 'html')
    assert built.returncode == 0, built.stderr[-5000:]
    assert (tmp_path / 'html' / 'docs' / 'en' / 'index.html').is_file()
    for page in ('README', 'configs/enet/README', 'docs/en/benchmarks'):
        assert (tmp_path / 'html' / f'{page}.html').is_file(), page


def test_every_page_is_checked():
    pages = {p.relative_to(ROOT).as_posix() for p in markdown_files()}
    assert {'README.md', 'docs/en/index.md', 'docs/en/get_started.md',
            'docs/en/benchmarks.md',
            'docs/en/advanced_guides/design.md'} <= pages
    assert {f'configs/{p.name}/README.md'
            for p in architecture_folders()} <= pages


@pytest.mark.parametrize(
    'page', markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_local_links_resolve(page):
    assert link_problems(page) == []


@pytest.mark.parametrize(
    'page', markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_tool_commands_name_tools_and_flags_that_exist(page):
    assert command_problems(page) == []


def test_the_readme_is_a_router():
    assert readme_problems((ROOT / 'README.md').read_text()) == []


def test_the_docs_name_many_tool_commands():
    found = {tool for page in markdown_files()
             for _, tool, _ in commands(page.read_text(encoding='utf-8'))}
    assert {'tools/train.py', 'tools/test.py', 'tools/demo.py',
            'tools/dist_train.sh', 'tools/deployment/export.py',
            'tools/analysis_tools/sweep.py'} <= found


@pytest.mark.parametrize('folder', architecture_folders(),
                         ids=lambda p: p.name)
def test_config_readme_lists_its_folder(folder):
    readme = folder / 'README.md'
    assert readme.is_file(), f'configs/{folder.name} has no README.md'
    problems = config_readme_problems(folder.name, readme.read_text(),
                                      folder_configs(folder), model_index())
    assert problems == []


# Each checker against a small bad example.


def test_slugs_are_githubs():
    assert slug('Deployment: merged and low-rank experts, ONNX, INT8') == (
        'deployment-merged-and-low-rank-experts-onnx-int8')
    assert slug('`torch.compile` and [links](x.md)') == (
        'torchcompile-and-links')
    assert anchors('# A\n## A\n```\n## Not a heading\n```\n#### Deep\n') \
        == {'a', 'a-1'}


def test_broken_links_are_found():
    page = ROOT / 'docs' / 'en' / 'index.md'
    bad = ('[ok](get_started.md#installation) [file](nowhere.md)\n'
           '[anchor](get_started.md#no-such-heading) [self](#nope)\n'
           '`[in code](nowhere.md)` [web](https://example.org/x#y)\n'
           '```\n[in a block](nowhere.md)\n```\n')
    problems = link_problems(page, bad)
    assert len(problems) == 3, problems
    assert 'nowhere.md: no such file' in problems[0]
    assert 'no-such-heading: no heading' in problems[1]
    assert '#nope: no heading' in problems[2]


def test_unknown_tools_and_flags_are_found():
    page = ROOT / 'docs' / 'en' / 'index.md'
    bad = ('```bash\n'
           'python tools/train.py CONFIG --work-dir D [--no-such-flag]\n'
           'python tools/nowhere.py --x && python tools/test.py C K --tta \\\n'
           '    --also-wrong   # --in-a-comment\n'
           'bash tools/dist_train.sh CONFIG 4 --resume --bogus\n'
           'python tools/analysis_tools/benchmark.py C [--baseline B |'
           ' --vs-stok]\n'
           '```\n'
           'Prose: `python tools/demo.py --iters 2 --fast`.\n')
    problems = command_problems(page, bad)
    assert [p.split(': ', 1)[1] for p in problems] == [
        'tools/train.py: unknown flag --no-such-flag',
        'tools/nowhere.py: no such tool',
        'tools/test.py: unknown flag --also-wrong',
        'tools/dist_train.sh: unknown flag --bogus',
        'tools/analysis_tools/benchmark.py: unknown flag --vs-stok',
        'tools/demo.py: unknown flag --fast',
    ], problems


def test_a_long_readme_is_refused():
    assert readme_problems('x\n' * README_MAX_LINES) == []
    assert len(readme_problems('x\n' * (README_MAX_LINES + 1))) == 1
    too_wide = readme_problems('a\n' + 'b' * 101)
    assert len(too_wide) == 1 and 'README.md:2: 101 characters' in too_wide[0]


def test_a_config_readme_that_does_not_fit_its_folder_is_refused():
    index = {'configs/x/a.py': {'Metadata': {'Parameters (M)': 1.5,
                                             'FLOPs (G)': 2.25}}}
    good = ('## Description\n\n## Usage\n\n## Results\n\n'
            '| config | Params (M) | FLOPs (G) |\n|---|---:|---:|\n'
            '| [a](a.py) | 1.500 | 2.250 |\n| [b](b.py) | 1 | 1 |\n\n'
            '## Citation\n')
    assert config_readme_problems('x', good, ['a.py', 'b.py'], index) == []
    problems = config_readme_problems('x', good, ['a.py', 'c.py'], index)
    assert len(problems) == 1 and "missing ['c.py']" in problems[0]
    assert "not in the folder ['b.py']" in problems[0]
    wrong = good.replace('| 2.250 |', '| 2.5 |').replace(
        '## Usage\n\n', '')
    problems = config_readme_problems('x', wrong, ['a.py', 'b.py'], index)
    assert len(problems) == 2, problems
    assert 'sections' in problems[0] and 'FLOPs (G) 2.5' in problems[1]


def test_a_sphinx_warning_fails_the_build(tmp_path):
    _needs_sphinx()
    source = tmp_path / 'src'
    source.mkdir()
    (source / 'conf.py').write_text(
        "extensions = ['myst_parser']\nmyst_heading_anchors = 3\n")
    (source / 'index.md').write_text('# Title\n\n[gone](#no-such-heading)\n')
    built = sphinx_build(source, source, tmp_path / 'html')
    assert built.returncode != 0
    assert 'no-such-heading' in built.stderr
