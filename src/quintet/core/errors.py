"""The library's error type: a message naming the bad value and what was expected.

The CLI turns a :class:`QuintetError` (and an ``OSError`` such as a missing file or an output
path that is not a folder) into one readable line and exit status 2.
"""


class QuintetError(ValueError):
    """A user-facing error: bad input, a missing file, an unknown name."""


def check_choice(kind: str, value: str, valid: "list[str] | tuple[str, ...] | dict") -> str:
    """Return ``value`` if it is one of ``valid``; otherwise raise naming the valid choices."""
    if value not in valid:
        raise QuintetError(f"unknown {kind} {value!r}; expected one of: {', '.join(sorted(valid))}")
    return value
