"""ZeroGPU support in one decorator: `@gpu_method` runs a method under `spaces.GPU` when the `spaces` package is
importable (Hugging Face Spaces), and is the plain method everywhere else.

On a ZeroGPU Space, `spaces.GPU` runs the call in a worker process forked from the app, which gets a GPU for the
call; arguments and results travel pickled. Pickling `self` (a CLIP model) on every call would cost seconds, so only
a key travels: the worker, forked after the instance exists, finds the instance under that key. Off ZeroGPU
(`SPACES_ZERO_GPU` unset) `spaces.GPU` returns the function unchanged, so the cost is one dict look-up.
"""
from __future__ import annotations

import functools
import weakref
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# Seconds of GPU a call may hold on ZeroGPU (its scheduler favours short requests; a batch of 32 pictures is ~1 s).
GPU_DURATION = 30

_instances: "weakref.WeakValueDictionary[int, Any]" = weakref.WeakValueDictionary()


def spaces_module():
    """The `spaces` package, or None where it is not installed."""
    try:
        import spaces  # noqa: PLC0415
    except ImportError:
        return None
    return spaces if callable(getattr(spaces, "GPU", None)) else None


def gpu_method(method: F) -> F:
    """Decorate an instance method so that on ZeroGPU it runs with a GPU; elsewhere return it unchanged."""
    spaces = spaces_module()
    if spaces is None:
        return method

    def on_gpu(key: int, args: tuple, kwargs: dict) -> Any:
        return method(_instances[key], *args, **kwargs)

    on_gpu.__name__ = on_gpu.__qualname__ = f"{method.__qualname__.replace('.', '_')}_on_gpu"
    remote = spaces.GPU(duration=GPU_DURATION)(on_gpu)

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        _instances[id(self)] = self
        return remote(id(self), args, kwargs)

    wrapper.__stylishi_gpu__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
