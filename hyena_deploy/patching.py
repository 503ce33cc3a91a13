"""Model patchers: adapt a third-party model for export for the duration of a ``with`` block, then restore it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_MISSING = object()


@contextmanager
def patched(target: object, **attributes: object) -> Iterator[None]:
    """Set ``attributes`` on ``target`` (a module, class or object), creating missing ones; on exit every one is
    restored to what it was (or removed where it did not exist)."""
    saved = {name: getattr(target, name, _MISSING) for name in attributes}
    try:
        for name, value in attributes.items():
            setattr(target, name, value)
        yield
    finally:
        for name, value in saved.items():
            if value is _MISSING:
                delattr(target, name)
            else:
                setattr(target, name, value)
