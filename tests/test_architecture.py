"""The architecture the README describes, checked: which app may import which, no import cycle, and an ML
layer that loads no Django.

Imports are read from the source (every `import`, at module level or inside a function, since a lazy import
is still a dependency), so a new module is checked without being listed here.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("workbench", "jobs", "annotations", "training", "clustering", "review")

# What each app may import (README, "Architecture"): each room sits on the ones before it. The project
# package is two things: shared plumbing every app may use (settings, paths, roles, downloads, the Celery
# app, template tags) and the top-level pages and URLs that compose all apps.
WORKBENCH_SHARED = {
    "workbench.paths",
    "workbench.roles",
    "workbench.downloads",
    "workbench.params",
    "workbench.env",
    "workbench.settings",
    "workbench.celery",
    "workbench.middleware",
}
MAY_IMPORT = {
    "jobs": set(),
    "annotations": {"jobs"},
    "training": {"jobs", "annotations"},
    "clustering": {"jobs", "annotations", "training"},
    "review": {"jobs", "annotations", "training", "clustering"},
}

# The ML and file-format layer: plain modules, testable without Django.
PLAIN_MODULES = [
    "annotations.connection_types",
    "annotations.csvformats",
    "annotations.demo",
    "annotations.iiif",
    "annotations.iiif_source",
    "annotations.images",
    "annotations.knowledge",
    "annotations.pyramids",
    "annotations.splits",
    "annotations.web_annotations",
    "annotations.storage",
    "jobs.progress",
    "jobs.pipeline",
    "training.backbones",
    "training.extraction",
    "training.conditional",
    "training.face_weights",
    "training.faces",
    "training.gate",
    "training.label_models",
    "training.label_trainer",
    "training.labels",
    "training.losses",
    "training.methods",
    "training.metrics",
    "training.mining",
    "training.mtcnn",
    "training.signature_store",
    "training.synthetic",
    "training.trainer",
    "training.verification",
    "training.whitening",
    "clustering.algorithms",
    "clustering.layouts",
    "clustering.metrics",
    "clustering.neighbours",
    "clustering.optics",
    "clustering.proposals",
    "clustering.verified",
    "review.simulation",
]


def project_modules() -> dict[str, Path]:
    modules = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that `name` imports (a `from package import module` counts as the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target not in APPS:  # a bare package is its (empty) __init__
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def test_apps_import_only_the_rooms_below_them():
    wrong = []
    for module, targets in import_graph().items():
        app = module.split(".")[0]
        if app == "workbench":
            continue  # the project's pages compose every app
        for target in targets:
            other = target.split(".")[0]
            if other == app or target in WORKBENCH_SHARED or target.startswith("workbench.templatetags"):
                continue
            if other not in MAY_IMPORT[app]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports against the README's architecture:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle():
    graph = import_graph()
    # Tarjan's strongly connected components: any component of two or more modules is a cycle.
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checks_see_a_cycle_and_a_wrong_import(tmp_path):
    """The two checks above are only worth something if they can fail: fed a cycle and an upward import."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from training import rounds\n")
    b.write_text("def f():\n    from clustering import views\n")
    known = {"training.rounds", "clustering.views"}
    assert imports_of("clustering.views", a, known) == {"training.rounds"}
    assert imports_of("training.rounds", b, known) == {"clustering.views"}  # a lazy import counts


def test_the_ml_layer_imports_no_django():
    """Each plain module, imported in a fresh interpreter without settings, loads no Django or Celery."""
    code = (
        "import importlib, json, sys\n"
        f"modules = {PLAIN_MODULES!r}\n"
        "loaded = {}\n"
        "for name in modules:\n"
        "    importlib.import_module(name)\n"
        "    loaded[name] = sorted(m for m in ('django', 'celery') if m in sys.modules)\n"
        "print(json.dumps(loaded))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == {name: [] for name in PLAIN_MODULES}


def test_the_readme_architecture_names_every_app():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    listed = {line.split("/")[0] for line in block.splitlines() if "/" in line.split(" ")[0]}
    assert set(APPS) <= listed
    for app in APPS:
        assert f"**`{app}`**" in section, f"no paragraph for {app}"
    for line in section.splitlines():
        for name in PLAIN_MODULES:
            module = name.rpartition(".")[2]
            if f"`{module}`" in line:
                assert (ROOT / name.replace(".", "/")).with_suffix(".py").is_file()
