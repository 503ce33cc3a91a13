"""The one exception type the CLI turns into a one-line message."""


class HyenaDeployError(Exception):
    """A problem the user can fix (bad input, failed parity, unsupported graph)."""
