"""`python -m label_image` and the `label_image` command.

The CLI is loaded through interrupts.launch: a Ctrl-C while its modules load ends with one line.
"""
from retrain.common.interrupts import launch


def main() -> None:
    launch('label_image.cli', 'label_image')


if __name__ == '__main__':
    main()
