"""The one exception type the CLI turns into a one-line message."""


class HyenaDeployError(Exception):
    """A problem the user can fix (bad input, failed parity, unsupported graph)."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type name when it has none."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
