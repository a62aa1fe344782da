"""Check the import graph: no cycles between packages, and no import against the layers.

``python -m helpdesk.tools.layers`` reads every module of ``helpdesk`` and ``telephony`` with
``ast`` (nothing is imported or run), takes every static import, including those inside
functions (they are still dependencies, only deferred), and prints

- each cycle between packages (``helpdesk/tickets`` -> ``helpdesk/outbox`` -> ``helpdesk/tickets``),
  with the imports that make it,
- each cycle between folders, where a folder's services and its jobs (``*.tasks``) count as one:
  a job that calls back into the services that start it is the same loop as two services
  calling each other (``KNOWN_FOLDER_CYCLES`` lists the ones being cut, each with its reason), and
- each import a layer may not make (the table ``LAYERS`` below).

It exits 1 when it printed a problem, 0 when the graph is clean.
"""

import ast
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP_PACKAGES = ("helpdesk", "telephony")


@dataclass(frozen=True)
class Layer:
    """A kind of module, the module names it covers (shell patterns) and the layers it may not import."""

    name: str
    modules: tuple[str, ...]
    may_not_import: tuple[str, ...]
    holds: str


# The layers, from the edge to the floor. A module belongs to the first row whose pattern matches
# its dotted name. Rows that forbid nothing are listed so that every module has a named place.
EDGE = ("wiring", "page", "api", "socket", "adapter", "jobs")
LAYERS: tuple[Layer, ...] = (
    Layer("wiring", ("helpdesk.app", "helpdesk.pages", "helpdesk.channels.wiring", "helpdesk.cli",
                     "helpdesk.*.cli", "helpdesk.demo", "helpdesk.tools.*", "helpdesk.migrations.*"),
          (), "builds the app: mounts every router, starts the background work; commands"),
    Layer("socket", ("helpdesk.realtime.api",),
          (), "the websocket endpoint live pages and the CTI client hold open"),
    Layer("page", ("helpdesk.*.views", "helpdesk.*_views", "helpdesk.web.*"),
          ("wiring",), "HTML pages and the page kit (templates, csrf, sessions, i18n)"),
    Layer("api", ("helpdesk.*.api", "helpdesk.*_api", "helpdesk.*.dependencies"),
          ("wiring",), "JSON endpoints and their request dependencies"),
    Layer("tables", ("helpdesk.*.models", "helpdesk.*_models"),
          (*EDGE, "domain", "events", "hub"), "each package's tables and typed rows"),
    Layer("adapter", ("helpdesk.channels", "helpdesk.channels.*", "telephony", "telephony.*"),
          ("wiring",), "providers' wire formats: mail, LINE, Meta, chat, Shopify, Twilio, CTI"),
    Layer("jobs", ("helpdesk.*.tasks",),
          ("wiring",), "background work: sweeps, retries, polls; started by the app"),
    Layer("hub", ("helpdesk.realtime.hub", "helpdesk.realtime.bus"),
          (*EDGE, "domain"), "delivers frames to open sockets, across processes via Redis"),
    Layer("events", ("helpdesk.realtime", "helpdesk.realtime.*"),
          EDGE, "the event log, who each event is for, presence"),
    Layer("storage", ("helpdesk.storage", "helpdesk.storage.*", "helpdesk.db"),
          (*EDGE, "domain", "events", "hub", "tables"), "engines, sessions, the SQLite fast path"),
    Layer("base", ("helpdesk", "helpdesk.config", "helpdesk.errors", "helpdesk.normalize",
                   "helpdesk.html", "helpdesk.logs", "helpdesk.limits", "helpdesk.boundary",
                   "helpdesk.periodic", "helpdesk.models", "helpdesk.sla.hours", "helpdesk.tools"),
          (*EDGE, "domain", "events", "hub"),
          "settings, errors, text keys, HTML made inert, logging, calendar arithmetic; all tables"),
    Layer("domain", ("helpdesk.*",),
          EDGE, "the services: tickets, customers, calls, inboxes, realtime log, ..."),
)


@dataclass(frozen=True)
class Import:
    """One import statement's target, as a module of the project."""

    source: str
    target: str
    line: int


def module_name(path: Path) -> str:
    """``helpdesk/tickets/service.py`` -> ``helpdesk.tickets.service`` (a package: its folder)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    found: dict[str, Path] = {}
    for top in TOP_PACKAGES:
        for path in sorted((ROOT / top).rglob("*.py")):
            found[module_name(path)] = path
    return found


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module a ``from … import`` names, with relative levels resolved."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a project module (``a.b.func`` -> ``a.b``)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[Import]:
    """The project modules ``module`` imports, wherever in the file the import is written."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            origin = _absolute(node, module, is_package)
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name`` mod.
            names = [f"{origin}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = _known(name, modules)
            if target is not None and target != module:
                yield Import(module, target, node.lineno)


def layer_of(module: str) -> Layer:
    """The first row of ``LAYERS`` that covers ``module``."""
    for layer in LAYERS:
        if any(fnmatchcase(module, pattern) for pattern in layer.modules):
            return layer
    raise LookupError(f"{module} is in no layer")


def package_of(module: str) -> str:
    """The node a module counts towards in the package graph.

    A module directly in a top package is its own node (``helpdesk.db``). In a folder, the domain
    modules (services) form one node, ``helpdesk.tickets``, and the modules of each other layer
    one node each, ``helpdesk.tickets [page]``, ``helpdesk.tickets [tables]``: a folder's pages
    may use another folder's services while that folder's services use the first one's, and
    tables refer to each other's keys, but no two folders' services may need each other, and no
    page kit may need the pages built on it.
    """
    parts = module.split(".")
    if len(parts) <= 2:
        return module
    layer = layer_of(module).name
    folder = ".".join(parts[:2])
    return folder if layer == "domain" else f"{folder} [{layer}]"


def layer_violations(edges: Iterable[Import]) -> list[str]:
    """Each import its module's layer may not make."""
    found = []
    for edge in edges:
        source, target = layer_of(edge.source), layer_of(edge.target)
        if target.name in source.may_not_import:
            found.append(f"{edge.source}:{edge.line}: {source.name} imports {target.name} "
                         f"module {edge.target}")
    return found


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of nodes that reach each other (only groups of two or more)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def folder_of(module: str) -> str:
    """The node a module counts towards in the folder graph: a folder's jobs join its services.

    ``helpdesk.tickets.tasks`` and ``helpdesk.tickets.service`` are both ``helpdesk.tickets``;
    tables, pages and API modules stay apart as in ``package_of`` (tables are the floor every
    service may read; a page may use services that use its own folder).
    """
    parts = module.split(".")
    if len(parts) > 2 and layer_of(module).name == "jobs":
        return ".".join(parts[:2])
    return package_of(module)


# Folder cycles known and being cut, each with why it exists; the check fails when one is gone, so
# that the entry is removed with the cut.
KNOWN_FOLDER_CYCLES: dict[frozenset[str], str] = {}


@dataclass(frozen=True)
class Cycle:
    """Nodes that reach each other, with one import for each link between two of them."""

    members: tuple[str, ...]
    links: tuple[str, ...]

    def report(self, kind: str) -> str:
        """The cycle as printed: its members, then one line per link."""
        return (f"cycle between {len(self.members)} {kind}: {', '.join(self.members)}\n"
                + "\n".join(self.links))


def cycles(edges: Iterable[Import], node_of: Callable[[str], str]) -> list[Cycle]:
    """Each group of nodes (``node_of`` a module) that import each other, with the imports inside."""
    graph: dict[str, set[str]] = {}
    why: dict[tuple[str, str], Import] = {}
    for edge in edges:
        source, target = node_of(edge.source), node_of(edge.target)
        if source != target:
            graph.setdefault(source, set()).add(target)
            why.setdefault((source, target), edge)
    found = []
    for group in _strongly_connected(graph):
        inside = sorted(pair for pair in why if pair[0] in group and pair[1] in group)
        links = [f"  {a} -> {b}  ({why[a, b].source}:{why[a, b].line})" for a, b in inside]
        found.append(Cycle(tuple(group), tuple(links)))
    return found


def package_cycles(edges: Iterable[Import]) -> list[str]:
    """Each group of packages that import each other, with the imports inside the group."""
    return [cycle.report("packages") for cycle in cycles(edges, package_of)]


def folder_cycles(
    edges: Iterable[Import], known: dict[frozenset[str], str] = KNOWN_FOLDER_CYCLES
) -> list[str]:
    """Each folder cycle not in ``known``, and each entry of ``known`` no longer a cycle."""
    found = cycles(edges, folder_of)
    present = {frozenset(cycle.members) for cycle in found}
    return ([cycle.report("folders") for cycle in found if frozenset(cycle.members) not in known]
            + [f"known folder cycle {', '.join(sorted(group))} is gone: remove it from "
               "KNOWN_FOLDER_CYCLES" for group in known if group not in present])


def all_imports() -> list[Import]:
    """Every import between the project's modules."""
    modules = project_modules()
    return [edge for module, path in modules.items() for edge in imports_of(module, path, modules)]


def main() -> int:
    edges = all_imports()
    problems = package_cycles(edges) + folder_cycles(edges) + layer_violations(edges)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in the import graph", file=sys.stderr)
        return 1
    for group, reason in KNOWN_FOLDER_CYCLES.items():
        print(f"known folder cycle, being cut: {', '.join(sorted(group))}: {reason}")
    known = f" but {len(KNOWN_FOLDER_CYCLES)} known" if KNOWN_FOLDER_CYCLES else ""
    print(f"import graph clean: {len(edges)} imports, no package cycle, no folder cycle{known}, "
          "no layer broken")
    return 0


if __name__ == "__main__":
    sys.exit(main())
