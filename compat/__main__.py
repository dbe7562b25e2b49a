"""`python -m compat inspect|convert`."""
from compat.cli import run

if __name__ == '__main__':
    run()
