"""The tree keeps the shape docs/architecture.md draws: no import cycle among service modules (imports
inside functions count: they hide cycles, they do not remove them), no module over 500 lines, the
server never imports the developer tools, and the page and the README's "How it is built" name only
modules that exist. Read from the source with `ast`: nothing is imported.

Each rule has an allow-list for what breaks it today and is being changed elsewhere; an entry that no
longer breaks the rule fails too, so the lists only shrink.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "service"
MAX_LINES = 500

# Entry points that may reach the tools: the command line runs them.
COMMAND_LINE = {"service.cli", "service.__main__"}


# --- the import graph -------------------------------------------------------------------------------

def service_sources() -> tuple[dict[str, str], set[str]]:
    """Every module of the package by dotted name (a package by its __init__.py), and which are packages."""
    sources, packages = {}, set()
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
            packages.add(".".join(parts))
        sources[".".join(parts)] = path.read_text(encoding="utf-8")
    return sources, packages


def import_graph(sources: dict[str, str] | None = None, packages: set[str] = frozenset()) -> dict[str, set[str]]:
    """module -> the service modules it imports, anywhere in it (top level, functions, branches)."""
    if sources is None:
        sources, packages = service_sources()

    def known(name: str) -> str | None:  # `service.x.y.Name` -> the module that defines it
        while name and name not in sources:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, text in sources.items():
        package = name if name in packages else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(text, name)):
            if isinstance(node, ast.Import):
                targets.update(known(alias.name) for alias in node.names if alias.name.split(".")[0] == "service")
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the importing module's package, up level - 1
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                if base.split(".")[0] != "service":
                    continue
                for alias in node.names:  # `from service.x import y`: y is a module, or a name in x
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in sources else known(base))
        graph[name] = targets - {None, name}
    return graph


@functools.cache
def service_graph() -> dict[str, set[str]]:
    return import_graph()


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def without(graph: dict[str, set[str]], edges: set[tuple[str, str]]) -> dict[str, set[str]]:
    return {node: {t for t in targets if (node, t) not in edges} for node, targets in graph.items()}


def test_the_cycle_finder_finds_cycles_hidden_in_functions():
    """The graph and the finder on modules made here: a cycle closed by imports inside functions, one of
    them relative, is found; taking one of its edges away leaves none."""
    sources = {"service": "", "service.pkg": "", "service.pkg.a": "from service.pkg import b\n",
               "service.pkg.b": "def f():\n    import service.c\n",
               "service.c": "def g():\n    if True:\n        from .pkg.a import thing\n",
               "service.d": "import service.pkg.a\nimport os\n"}
    graph = import_graph(sources, {"service", "service.pkg"})
    assert graph["service.c"] == {"service.pkg.a"} and graph["service.d"] == {"service.pkg.a"}
    assert cycles(graph) == [["service.c", "service.pkg.a", "service.pkg.b"]]
    assert cycles(without(graph, {("service.c", "service.pkg.a")})) == []


def test_the_graph_sees_imports_inside_functions():
    graph = service_graph()
    assert "service.http.server" in graph["service.http.app"]  # at the top
    assert "service.tools.graph_description" in graph["service.tools.convert"]  # inside convert()
    assert "service.tools.bench.run" in graph["service.cli"]  # inside a command


def test_no_import_cycle_among_service_modules():
    graph = service_graph()
    found = cycles(graph)
    described = ["\n  ".join(f"{module} -> {', '.join(sorted(graph[module] & set(component)))}"
                             for module in component) for component in found]
    assert not found, "import cycles (a module cannot be read, tested or loaded without the others):\n  " + \
        "\n\n  ".join(described)


def test_the_server_never_imports_the_developer_tools():
    graph = service_graph()
    server = [name for name in graph if not name.startswith("service.tools") and name not in COMMAND_LINE]
    found = {(name, target) for name in server for target in graph[name] if target.startswith("service.tools")}
    assert not found, f"server modules importing service.tools (the server must run without them): {sorted(found)}"


# --- sizes ------------------------------------------------------------------------------------------

def test_no_module_is_over_500_lines():
    lengths = {str(path.relative_to(REPO)): len(path.read_text(encoding="utf-8").splitlines())
               for path in PACKAGE.rglob("*.py")}
    long = {path: n for path, n in lengths.items() if n > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines (split by concern): {sorted(long.items())}"


# --- the pages that describe the tree --------------------------------------------------------------

ARCHITECTURE = REPO / "docs" / "architecture.md"
MODULE_PATH = re.compile(r"\bservice/(?:[A-Za-z_][\w]*/)*(?:[A-Za-z_]\w*\.py|[A-Za-z_]\w*/)")


def named_in_architecture() -> set[str]:
    """Every module or package path docs/architecture.md names (`service/serving/manager.py`, `service/http/api/`)."""
    return set(MODULE_PATH.findall(ARCHITECTURE.read_text(encoding="utf-8")))


def named_in_readme_tree() -> set[str]:
    """The README's "How it is built" tree: a line per folder or module, indented two spaces a level (a
    line that starts with neither goes on with the one before), whose words name more modules of that
    folder (`manager.py`, `backends/`)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## How it is built\n.*?```\n(.+?)```", readme, re.S).group(1)
    named, folders = set(), []
    for line in block.splitlines():
        entry, _, description = line.strip().partition(" ")
        if entry.endswith(("/", ".py")):
            folders = folders[:(len(line) - len(line.lstrip())) // 2]
            if not folders and entry != "service/":  # static/, deploy/: not the package
                continue
            here = "".join(folders)
            named.add(here + entry)
            if entry.endswith("/"):
                folders.append(entry)
                here += entry
        elif folders:
            description = line.strip()
        else:
            continue
        named.update(here + word for word in re.findall(r"(?<![\w/.])([a-z_]\w*\.py|[a-z_]\w*/)(?![\w<])", description))
    return named


def test_docs_architecture_names_only_modules_that_exist():
    named = named_in_architecture()
    assert len(named) > 40, "the page's module map was found"
    missing = sorted(path for path in named if not (REPO / path).exists())
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_every_package_is_on_docs_architecture():
    packages = {str(path.parent.relative_to(REPO)) + "/" for path in PACKAGE.rglob("__init__.py")} - {"service/"}
    missing = sorted(packages - named_in_architecture())
    assert not missing, f"packages docs/architecture.md does not describe: {missing}"


def test_the_readme_tree_names_only_modules_that_exist():
    named = named_in_readme_tree()
    assert {"service/", "service/serving/", "service/http/"} <= named, "the README's tree was found"
    missing = sorted(path for path in named if not (REPO / path).exists())
    assert not missing, f"README.md's \"How it is built\" names modules that do not exist: {missing}"
