"""Where numba caches the compiled kernels, and a cache pre-built where the process cannot write.

numba keeps each compiled kernel (``cache=True``) in the first of these places it can write:
``NUMBA_CACHE_DIR``; the ``__pycache__`` beside ``compiled.py``; the user's cache folder
(``$XDG_CACHE_HOME/numba``, else ``~/.cache/numba``). With none, ``compiled._jit`` compiles without a
cache, silently, in every process. numba never reads a place it cannot write, so a cache pre-built at
install or image time (``python -c "from codec.coding import kernels; kernels.warm()"`` run by the
installing user, which fills the ``__pycache__`` beside the source) would go unused once the install
is read-only: a container's image, a system-wide site-packages. :func:`read_prebuilt` makes every
kernel look there first. It only reads: what it lacks (another CPU, a signature that ``warm`` does not
make, an edited source) compiles and is saved where numba saves it, if anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType

from numba.core import caching, config
from numba.core.dispatcher import Dispatcher


class _BesideSource(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    """The ``__pycache__`` beside a kernel's source, taken even where it cannot be written."""

    def __init__(self, py_func: Callable, py_file: str) -> None:
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno

    def get_cache_path(self) -> str:
        return os.path.join(os.path.dirname(self._py_file), "__pycache__")

    @classmethod
    def from_function(cls, py_func: Callable, py_file: str) -> _BesideSource:
        return cls(py_func, py_file)


class _PrebuiltImpl(caching.CompileResultCacheImpl):
    _locator_classes = (_BesideSource,)


class _Prebuilt(caching.FunctionCache):
    """numba's cache of one function, beside its source; only ever loaded from."""

    _impl_class = _PrebuiltImpl


class _Layered(caching._Cache):
    """Loads from the pre-built cache, else from numba's own; saves only to numba's own."""

    def __init__(self, prebuilt: _Prebuilt, own: caching._Cache) -> None:
        self._prebuilt, self._own = prebuilt, own

    @property
    def cache_path(self) -> str | None:
        return self._own.cache_path

    def load_overload(self, sig: object, target_context: object) -> object:
        data = self._prebuilt.load_overload(sig, target_context)
        return self._own.load_overload(sig, target_context) if data is None else data

    def save_overload(self, sig: object, data: object) -> None:
        self._own.save_overload(sig, data)

    def enable(self) -> None:
        self._prebuilt.enable()
        self._own.enable()

    def disable(self) -> None:
        self._prebuilt.disable()
        self._own.disable()

    def flush(self) -> None:
        self._own.flush()


def read_prebuilt(module: ModuleType) -> None:
    """Have every numba dispatcher of ``module`` load from the ``__pycache__`` beside its source
    before numba's own place (where that is elsewhere, or nowhere); before any of them is called.
    Left to numba alone where ``NUMBA_CACHE_LOCATOR_CLASSES`` chooses its places."""
    if getattr(config, "CACHE_LOCATOR_CLASSES", ""):
        return
    for dispatcher in vars(module).values():
        if isinstance(dispatcher, Dispatcher):
            prebuilt = _Prebuilt(dispatcher.py_func)
            if dispatcher._cache.cache_path != prebuilt.cache_path:
                dispatcher._cache = _Layered(prebuilt, dispatcher._cache)
