"""Sphinx extension for the book's API reference (book/api/*.md), loaded through _config.yml.

Rule: each public object is documented once, under the shortest public name a reader imports it
by. ``labkit.flagella``, ``labkit.evals`` and ``labkit.moe`` re-export their main functions
(``from labkit.flagella import swim``), so those are documented on the package
(``labkit.flagella.swim``); a submodule's section lists only what its package does not re-export.

- ``autodoc-skip-member`` drops, while a submodule ``P.sub`` is documented, the members that are the
  same object as ``P.<name>`` with ``name`` in ``P.__all__`` (P one of :data:`PACKAGES`).
- :mod:`labkit.moe` resolves its exports lazily (module ``__getattr__``), so ``dir(labkit.moe)``
  does not list them and autodoc would document none; at ``builder-inited`` they are resolved and
  set on the module, in the Sphinx process only.
- Module constants named in ``__all__`` are documented even without a ``#:`` comment (autodoc
  skips those); values longer than a line are not printed.
- A docstring's cross-reference written relative to the module that defines the object
  (``:func:`fit_slope``` in ``labkit.flagella.population``) is resolved to where the object is
  documented (``labkit.flagella.fit_slope``) when exactly one documented object has that name.
- ``|S|`` in a docstring means a set's size, never an reST substitution: it is escaped.
- ``.. labkit-api:: labkit.flagella`` documents a package and then each of its plain submodules in
  name order, so a new module appears in the reference without editing the pages. A submodule whose
  name the package rebinds to something else (``labkit.flagella.swim``, the function) is documented
  with ``:no-index:``: the name belongs to the package's object.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.ext.autodoc import DataDocumenter, ModuleDocumenter
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

PACKAGES = ("labkit", "labkit.moe", "labkit.evals", "labkit.flagella")
MAX_VALUE_CHARS = 80

_current: dict[str, str] = {"module": ""}
logger = logging.getLogger(__name__)


def _materialise_lazy_exports(app: Any) -> None:
    for name in PACKAGES:
        package = importlib.import_module(name)
        for export in getattr(package, "__all__", ()):
            if export not in vars(package):
                setattr(package, export, getattr(package, export))


def _track_module(app: Any, what: str, name: str, obj: Any, options: Any, args: Any, retann: Any) -> None:
    # autodoc formats a module's signature before it documents the module's members
    if what == "module":
        _current["module"] = name


def _skip_reexported(app: Any, what: str, name: str, obj: Any, skip: bool, options: Any) -> bool | None:
    if what != "module":
        return None
    parent, _, _ = _current["module"].rpartition(".")
    if parent not in PACKAGES:
        return None
    package = importlib.import_module(parent)
    if name in getattr(package, "__all__", ()) and getattr(package, name, None) is obj:
        return True
    return None


class PublicDataDocumenter(DataDocumenter):
    """``DataDocumenter`` that also takes module constants listed in ``__all__``."""

    @classmethod
    def can_document_member(cls, member: Any, membername: str, isattr: bool, parent: Any) -> bool:
        if isattr:
            return isinstance(parent, ModuleDocumenter)
        if not isinstance(parent, ModuleDocumenter):
            return False
        if inspect.isroutine(member) or inspect.isclass(member) or inspect.ismodule(member):
            return False
        return membername in (getattr(parent.object, "__all__", None) or ())

    def should_suppress_value_header(self) -> bool:
        if super().should_suppress_value_header():
            return True
        try:
            return len(repr(self.object)) > MAX_VALUE_CHARS
        except Exception:  # a repr that fails is not worth printing
            return True

    def get_doc(self) -> list[list[str]] | None:
        # a constant without a comment would otherwise show its type's docstring (dict(), float(x) ...)
        comment = self.get_module_comment(self.objpath[-1])
        if comment:
            return [comment]
        doc = super().get_doc()
        own = getattr(self.object, "__doc__", None)
        if doc and own is not None and own == getattr(type(self.object), "__doc__", None):
            return []
        return doc


_SUBST = re.compile(r"(?<![`\\|])\|(?=[^\s|`])([^|`\n]*?[^\s|`\\])\|(?![`|_])")


def _escape_bars(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    for i, line in enumerate(lines):
        if "|" not in line or line.lstrip().startswith(("|", "+")):
            continue
        # leave ``literals`` alone: split on double backquotes, edit the even (plain) pieces
        pieces = line.split("``")
        for j in range(0, len(pieces), 2):
            pieces[j] = _SUBST.sub(r"\\|\1\\|", pieces[j])
        lines[i] = "``".join(pieces)


def _resolve_relative(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not target or target.startswith(".") or target.startswith("~"):
        return None
    domain = env.get_domain("py")
    parts = target.split(".")
    package = ".".join((node.get("py:module") or "").split(".")[:2])
    # "labkit.moe.policies.Policy.kernel_rule": try "policies.Policy.kernel_rule", then
    # "Policy.kernel_rule", ...: the longest tail that names exactly one documented object
    for start in range(1 if len(parts) > 1 else 0, len(parts)):
        tail = ".".join(parts[start:])
        matches = domain.find_obj(env, None, None, tail, node.get("reftype"), 1)
        # a class re-exported by its package is also listed under its defining module (an alias
        # that autodoc's :canonical: adds); count each documented object once
        names = sorted(
            {n for n, entry in matches if not entry.aliased and (n == tail or n.endswith("." + tail))}
        )
        if len(names) > 1:  # prefer the referring module's package
            names = [n for n in names if n.startswith(package + ".")] or names
        if len(names) == 1:
            node = node.deepcopy()
            node["reftarget"] = names[0]
            builder, reftype = app.builder, node["reftype"]
            return domain.resolve_xref(env, node["refdoc"], builder, reftype, names[0], node, contnode)
        if names:
            return None
    return None


class LabkitApi(SphinxDirective):
    """``.. labkit-api:: PACKAGE`` (options ``:exclude:`` submodule names, comma-separated)."""

    required_arguments = 1
    option_spec = {"exclude": lambda arg: [x.strip() for x in (arg or "").split(",") if x.strip()]}

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        package = importlib.import_module(name)
        exclude = set(self.options.get("exclude", []))
        lines = [f".. automodule:: {name}", "   :members:", "   :undoc-members:", ""]
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if info.ispkg or info.name.startswith("_") or info.name in exclude:
                continue
            module = importlib.import_module(f"{name}.{info.name}")
            lines += [f".. automodule:: {module.__name__}", "   :members:", "   :undoc-members:"]
            if vars(package).get(info.name, module) is not module:
                lines.append("   :no-index:")
            lines.append("")
        content = StringList(lines, source=f"<labkit-api {name}>")
        node = nodes.container()
        nested_parse_with_titles(self.state, content, node)
        return node.children


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("labkit-api", LabkitApi)
    app.setup_extension("sphinx.ext.autodoc")
    app.add_autodocumenter(PublicDataDocumenter, override=True)
    app.connect("builder-inited", _materialise_lazy_exports)
    app.connect("autodoc-process-signature", _track_module)
    app.connect("autodoc-skip-member", _skip_reexported)
    app.connect("autodoc-process-docstring", _escape_bars)
    app.connect("missing-reference", _resolve_relative)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
