"""The two cores cannot drift apart unnoticed: one stub, checked against both.

``src/fastfifo/_core.pyi`` (no catch-all ``__getattr__``) is the surface.  mypy.stubtest
checks it against the compiled module (tests/test_typing.py); this test checks both
cores against it with ``inspect``: every name the stub declares exists in each core with
the same parameters, and neither core has a public name the stub does not declare.
"""

from __future__ import annotations

import ast
import inspect
import os
import types

import pytest
from helpers import BACKENDS, backend_module

import fastfifo

STUB = os.path.join(os.path.dirname(fastfifo.__file__), "_core.pyi")


def _stub() -> dict[str, dict[str, list[str] | None]]:
    """{class name or "": {member: parameter names (None for a property or a value)}}."""
    with open(STUB) as f:
        tree = ast.parse(f.read())
    surface: dict[str, dict[str, list[str] | None]] = {"": {}}

    def params(fn: ast.FunctionDef) -> list[str] | None:
        if any(isinstance(d, ast.Name) and d.id == "property" for d in fn.decorator_list):
            return None
        a = fn.args
        names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
        return [n for n in names if n != "self"]

    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            surface[""][node.name] = params(node)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            surface[""][node.target.id] = None
        elif isinstance(node, ast.ClassDef):
            members: dict[str, list[str] | None] = {}
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    members[item.name] = params(item)
            surface[node.name] = members
    return surface


def _members(cls: type, stub: dict[str, dict[str, list[str] | None]], name: str) -> set[str]:
    """Every member the stub declares for ``cls`` and its stub bases."""
    out: set[str] = set()
    for klass in cls.__mro__:
        out |= set(stub.get(klass.__name__, {}))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_core_has_the_stubs_surface_with_the_same_parameters(backend):
    core = backend_module(backend)
    stub = _stub()
    for name, params in stub[""].items():
        assert hasattr(core, name), f"{backend} core lacks {name}"
        if params is not None:
            got = list(inspect.signature(getattr(core, name)).parameters)
            assert got == params, f"{backend} {name}{tuple(got)} != stub {tuple(params)}"
    for cls_name, members in stub.items():
        if not cls_name:
            continue
        cls = getattr(core, cls_name, None)
        if cls is None and cls_name.startswith("_"):  # a private base: via its subclasses
            continue
        assert isinstance(cls, type), f"{backend} core lacks class {cls_name}"
        for member, params in members.items():
            assert hasattr(cls, member), f"{backend} {cls_name} lacks {member}"
            if params is None or member.startswith("__"):
                continue
            got = [p for p in inspect.signature(getattr(cls, member)).parameters if p != "self"]
            assert got == params, f"{backend} {cls_name}.{member}{tuple(got)} != stub"


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_core_has_public_names_the_stub_does_not_declare(backend):
    core = backend_module(backend)
    stub = _stub()
    for cls_name in ("WriterCore", "ReaderCore", "MessageBatch"):
        cls = getattr(core, cls_name)
        declared = _members(cls, stub, cls_name)
        public = {
            n
            for n in dir(cls)
            if not n.startswith("_") and not isinstance(getattr(cls, n, None), types.ModuleType)
        }
        extra = public - declared
        assert not extra, f"{backend} {cls_name} has {sorted(extra)} that _core.pyi lacks"


def test_both_cores_share_the_docstrings_users_read():
    """help(Writer.put) says the same whichever core is loaded (once: "See the Cython core")."""
    if len(BACKENDS) < 2:
        pytest.skip("only the pure core is installed")
    compiled, pure = (backend_module(b) for b in ("cython", "python"))
    for cls_name in ("WriterCore", "ReaderCore"):
        for name in ("put", "put_many", "flush", "get", "get_many", "get_batch"):
            a = getattr(getattr(compiled, cls_name), name, None)
            b = getattr(getattr(pure, cls_name), name, None)
            if a is None and b is None:
                continue
            assert inspect.getdoc(a) == inspect.getdoc(b), f"{cls_name}.{name} docs differ"
