"""`python -m make_image_classifier` and the `make_image_classifier` command.

The CLI is loaded through interrupts.launch: a Ctrl-C while its modules load ends with one line.
"""
from retrain.common.interrupts import launch


def main() -> None:
    launch('make_image_classifier.cli', 'make_image_classifier')


if __name__ == '__main__':
    main()
