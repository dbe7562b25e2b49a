"""A Dask cluster on loopback for bench_dask.py and the tests: one scheduler and one-thread
workers, started with the README's commands and stopped by their process ids.

Each process logs to a file of its own in `root`, and workers log retrain's INFO lines
(DASK_LOGGING__ABSL=info), so a caller can tell which worker wrote which bottlenecks. The
scheduler unpickles the task graph and the workers run it, so both import this checkout.
"""
import contextlib
import os
import re
import socket
import subprocess
import sys
from typing import Dict, Iterator, List, Tuple

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _stop(processes: List[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def local_cluster(root: str, workers: int = 2,
                  timeout: float = 60) -> Iterator[Tuple[str, List[str]]]:
    """Yields (scheduler address, the workers' log files) once all workers have registered."""
    from distributed import Client
    address = f'tcp://127.0.0.1:{_free_port()}'
    env = dict(os.environ, DASK_LOGGING__ABSL='info',
               PYTHONPATH=os.pathsep.join([REPO_ROOT, os.environ.get('PYTHONPATH', '')]))
    commands: Dict[str, List[str]] = {'scheduler': [
        'scheduler', '--host', '127.0.0.1', '--port', address.rsplit(':', 1)[1],
        '--no-dashboard']}
    for i in range(1, workers + 1):
        commands[f'worker{i}'] = [
            'worker', address, '--nworkers', '1', '--nthreads', '1', '--no-nanny',
            '--no-dashboard', '--host', '127.0.0.1', '--name', f'worker{i}',
            '--local-directory', os.path.join(root, f'worker{i}')]
    started = {}
    try:
        for name, command in commands.items():
            with open(os.path.join(root, f'{name}.log'), 'wb') as log:
                started[name] = subprocess.Popen([sys.executable, '-m', 'dask', *command],
                                                 cwd=root, env=env, stdout=log,
                                                 stderr=subprocess.STDOUT)
        with Client(address, timeout=timeout) as client:
            client.wait_for_workers(workers, timeout=timeout)
        yield address, [os.path.join(root, f'worker{i}.log') for i in range(1, workers + 1)]
    finally:  # Workers first: a worker without its scheduler keeps trying to reconnect.
        _stop([p for name, p in started.items() if name != 'scheduler'])
        _stop([p for name, p in started.items() if name == 'scheduler'])


def bottlenecks_written(worker_log: str) -> int:
    """How many bottleneck files a worker's log says it wrote."""
    with open(worker_log, encoding='utf-8', errors='replace') as f:
        return sum(int(n) for n in re.findall(r'Wrote (\d+) bottleneck files', f.read()))
