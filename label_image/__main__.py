"""`python -m label_image`."""
from label_image.cli import run

if __name__ == '__main__':
    run()
