"""`python -m compat inspect|convert`.

The CLI is loaded through interrupts.launch: a Ctrl-C while its modules load ends with one line.
"""
from retrain.common.interrupts import launch


def main() -> None:
    launch('compat.cli', 'compat')


if __name__ == '__main__':
    main()
