"""`python -m make_image_classifier`."""
from make_image_classifier.cli import run

if __name__ == '__main__':
    run()
