"""`python -m retrain` and the `retrain` command.

The CLI is loaded through interrupts.launch: a Ctrl-C while its modules load ends with one line.
"""
from retrain.common.interrupts import launch


def main() -> None:
    launch('retrain.cli', 'retrain')


if __name__ == '__main__':
    main()
