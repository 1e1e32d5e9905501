"""One vocabulary for options across the public API, and the renames that led to it.

Names used everywhere: ``chunk_size`` (items processed together: permutations, targets,
layers; never changes a result), ``devices`` (devices to shard over), ``score`` (what a
cross-validation or test scores). Older names are accepted for one release with a
:class:`DeprecationWarning` through :func:`renamed`.
"""

from __future__ import annotations

import functools
import warnings

__all__ = ["renamed"]


def renamed(**old_to_new: str):
    """Decorator: accept each old keyword as its new name, with a DeprecationWarning.

    >>> @renamed(target_chunk="chunk_size")
    ... def f(*, chunk_size=None):
    ...     return chunk_size
    """

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{fn.__name__}() got both {old!r} (renamed) and {new!r}")
                    warnings.warn(f"{fn.__name__}(): {old!r} is renamed {new!r}; the old name "
                                  "will be removed in the next release", DeprecationWarning,
                                  stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return inner

    return wrap
