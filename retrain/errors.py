"""The one exception type the CLIs turn into a one-line message instead of a traceback."""


class RetrainError(Exception):
    """A problem with the user's input or environment (bad flag, missing file, unusable module).

    The message must make sense on its own, on one line: it names the file or value at fault and
    the reason. The CLIs print it and exit non-zero; nothing else is shown.
    """
