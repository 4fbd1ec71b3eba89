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
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

from core.provider_bundle import load_lazy

PACKAGE = "cdktf_cdktf_provider_aws"


def _install_bare_package() -> None:
    """Register the package without executing its `__init__` (idempotent)."""
    if PACKAGE in sys.modules:
        return
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{PACKAGE} is not installed; run the setup command from the README")
    load_lazy()
    package = types.ModuleType(PACKAGE, "Lazily loaded hashicorp/aws bindings (see core.aws)")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    package.__file__ = spec.origin
    package.__package__ = PACKAGE
    sys.modules[PACKAGE] = package


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
