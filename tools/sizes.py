"""Module (> 400 lines) and function (> 80 lines) sizes and import cycles of interp_steer: `python tools/sizes.py [repo]`."""

import ast, sys, pathlib, collections

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".") / "interp_steer"
mods, funcs, graph = [], [], collections.defaultdict(set)
for p in sorted(root.rglob("*.py")):
    src = p.read_text()
    n = src.count("\n")
    rel = p.relative_to(root.parent)
    name = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
    if n > 400:
        mods.append((n, str(rel)))
    tree = ast.parse(src)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            ln = node.end_lineno - node.lineno + 1
            if ln > 80:
                funcs.append((ln, f"{rel}:{node.name}"))
        if isinstance(node, ast.ImportFrom) and node.module:
            mod = node.module
            if node.level:
                base = name.split(".") if p.name == "__init__.py" else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            if mod.startswith("interp_steer"):
                graph[name].add(mod)
                for a in node.names:
                    graph[name].add(f"{mod}.{a.name}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("interp_steer"):
                    graph[name].add(a.name)
allmods = set(graph) | {m for s in graph.values() for m in s}
known = {".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__") for p in root.rglob("*.py")}
g = {m: {t for t in graph[m] if t in known and t != m} for m in known}
# Tarjan SCC
idx, low, st, on, out, c = {}, {}, [], set(), [], [0]


def sc(v):
    idx[v] = low[v] = c[0]
    c[0] += 1
    st.append(v)
    on.add(v)
    for w in g[v]:
        if w not in idx:
            sc(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        comp = []
        while True:
            w = st.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            out.append(sorted(comp))


sys.setrecursionlimit(10000)
for v in sorted(g):
    if v not in idx:
        sc(v)
print("modules > 400 lines:")
[print(f"  {n:5d} {m}") for n, m in sorted(mods, reverse=True)]
print("functions > 80 lines:")
[print(f"  {n:5d} {f}") for n, f in sorted(funcs, reverse=True)]
print("import cycles (module-level SCCs):")
[print("  ", c_) for c_ in out]
