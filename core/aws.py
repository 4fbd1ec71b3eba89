"""Lazy access to the prebuilt hashicorp/aws bindings.

`cdktf_cdktf_provider_aws/__init__.py` imports all ~2,200 resource submodules eagerly, which
costs about ten seconds and several hundred megabytes per process before any work is done.
Each submodule only needs the package's `_jsii` module (which loads the jsii assembly), so we
register a bare package object in `sys.modules` whose `__path__` points at the real package
directory. Python then imports submodules from disk on demand without ever running the heavy
`__init__`. Use it as::

    from core.aws import aws
    aws.s3_bucket.S3Bucket(self, "bucket", ...)

If something imported the package the naive way first, the real package is reused: still
correct, only slower.

Before the first submodule loads, the lazy-index copy of the provider's jsii bundle (built by
`make setup`, see core.provider_bundle) is handed to the jsii kernel, which then never loads the
~2,100 resource modules of the stock bundle that no stack uses.

The submodules are compiled without their `if __debug__:` blocks (as `python -O` would, for these
generated files only): those blocks re-check every argument with typeguard, half of the Python time
of a synthesis, and the jsii kernel checks the same arguments again against the assembly's types
(tests/test_provider_bundle.py proves a wrongly typed argument is still refused). The compiled code
is cached under .gen/provider-aws/bytecode, never in the installed package. The string attributes of
the resources and data sources (`bucket.arn`) return their Terraform reference without a round trip
into Node (core.references). INFRA_PROVIDER_BUNDLE=stock loads the provider exactly as installed (the
benchmark's reference, the equivalence test).
"""

from __future__ import annotations
import __future__

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import marshal
import os
import sys
import tempfile
import types

from core import references
from core.provider_bundle import OUTPUT_DIR, SELECT_VARIABLE, load_lazy

PACKAGE = "cdktf_cdktf_provider_aws"
# As `from __future__ import annotations` would: the bindings' ~60,000 annotations stay unevaluated strings
# (evaluating them was most of the time spent importing the modules; nothing reads them at run time once
# the typeguard blocks are gone).
ANNOTATIONS_AS_STRINGS = __future__.annotations.compiler_flag


def _install_bare_package() -> None:
    """Register the package without executing its `__init__` (idempotent)."""
    if PACKAGE in sys.modules:
        return
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{PACKAGE} is not installed; run the setup command from the README")
    load_lazy()
    if os.environ.get(SELECT_VARIABLE) != "stock":
        references.install()
        sys.meta_path.insert(0, _UncheckedBindingsFinder())
    package = types.ModuleType(PACKAGE, "Lazily loaded hashicorp/aws bindings (see core.aws)")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    package.__file__ = spec.origin
    package.__package__ = PACKAGE
    sys.modules[PACKAGE] = package


class _UncheckedBindingsLoader(importlib.machinery.SourceFileLoader):
    """Loads a provider submodule compiled with optimize=1, caching the code in .gen (never beside the source),
    its attributes returning references written in Python (core.references)."""

    def get_code(self, fullname: str) -> types.CodeType:
        source_path = self.get_filename(fullname)
        status = os.stat(source_path)
        header = importlib.util.MAGIC_NUMBER + f"{status.st_mtime_ns}:{status.st_size}\n".encode()
        cache = OUTPUT_DIR / "bytecode" / f"{fullname}.opt-1.annotations.pyc"
        try:
            data = cache.read_bytes()
            if data.startswith(header):
                return marshal.loads(data[len(header):])
        except (OSError, ValueError, EOFError):
            pass
        code = compile(self.get_data(source_path), source_path, "exec", flags=ANNOTATIONS_AS_STRINGS,
                       dont_inherit=True, optimize=1)
        _write_atomically(cache, header + marshal.dumps(code))
        return code

    def set_data(self, path: str, data: bytes, *, _mode: int = 0o666) -> None:
        """Never write bytecode next to the installed sources (get_code caches in .gen instead)."""

    def exec_module(self, module: types.ModuleType) -> None:
        super().exec_module(module)
        references.patch_module(module, module.__name__.rpartition(".")[2])


def _write_atomically(path, data: bytes) -> None:
    """Concurrent test workers may compile the same module: each writes whole files, the last one wins."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as part:
            part.write(data)
        os.replace(part.name, path)
    except OSError:
        pass  # a read-only checkout only loses the cache


class _UncheckedBindingsFinder(importlib.abc.MetaPathFinder):
    """Routes `cdktf_cdktf_provider_aws.<resource>` imports (not `._jsii`) to _UncheckedBindingsLoader."""

    def find_spec(self, fullname, path, target=None):
        if not fullname.startswith(PACKAGE + ".") or fullname == f"{PACKAGE}._jsii":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and type(spec.loader) is importlib.machinery.SourceFileLoader:
            spec.loader = _UncheckedBindingsLoader(spec.loader.name, spec.loader.path)
        return spec


class _LazyProvider:
    """Attribute access imports `cdktf_cdktf_provider_aws.<name>` on first use."""

    def __getattr__(self, name: str) -> types.ModuleType:
        if name.startswith("__"):
            raise AttributeError(name)
        _install_bare_package()
        module = importlib.import_module(f"{PACKAGE}.{name}")
        setattr(self, name, module)
        return module


aws = _LazyProvider()


def loaded_submodules() -> list[str]:
    """Names of the provider submodules imported so far (used by tests and the benchmark)."""
    prefix = PACKAGE + "."
    return sorted(
        name[len(prefix):]
        for name in sys.modules
        if name.startswith(prefix) and name.count(".") == 1 and not name.endswith("._jsii")
    )
