"""`python -m retrain`."""
from retrain.cli import run

if __name__ == '__main__':
    run()
