#!/usr/bin/env python3
"""Module cycles in one crate, from its source text.

An edge A -> B when a file of module A (outside its `#[cfg(test)] mod tests`) names `crate::B…`
(also inside `use crate::{…}` groups) or `super::B…`; a module and its own parent or children do
not count (a parent declaring and re-exporting its children is not a cycle). Modules are cut to
LEVEL path segments (1: top-level modules, 2: one level deeper). Prints every strongly connected
component of more than one module, with its edges.

Usage: scripts/module-cycles.py CRATE/src [LEVEL]
       scripts/module-cycles.py          (every workspace member, levels 1 and 2; CI runs this)
Exit status 1 when there is a cycle."""
import os, re, subprocess, sys
if len(sys.argv) == 1:
    here = os.path.dirname(os.path.abspath(__file__))
    workspace = os.path.dirname(here)
    toml = open(os.path.join(workspace, 'Cargo.toml')).read()
    members = re.search(r'members\s*=\s*\[([^\]]*)\]', toml).group(1)
    failed = False
    for member in re.findall(r'"([^"]+)"', members):
        for level in ('1', '2'):
            out = subprocess.run([sys.executable, __file__, os.path.join(workspace, member, 'src'), level],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                failed = True
                print(f'{member} (level {level}):', out.stdout, end='')
    print('module cycles found' if failed else 'no module cycles in any workspace crate')
    sys.exit(1 if failed else 0)
root = sys.argv[1]
def module_of(path):
    rel = os.path.relpath(path, root)
    parts = rel[:-3].split(os.sep)
    if parts[0] == 'bin': return None
    if parts[-1] in ('mod', 'lib', 'main'): parts = parts[:-1]
    return parts  # full module path
files = []
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'): files.append(os.path.join(d, f))
# Modules declared `#[cfg(test)] mod name;` live in files of their own: tests may reach anywhere.
test_modules = set()
for f in files:
    mod = module_of(f)
    if mod is None: continue
    for m in re.finditer(r'#\[cfg\(test\)\]\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+([a-z_0-9]+)\s*;', open(f).read()):
        test_modules.add(tuple(mod + [m.group(1)]))
def is_test(mod):
    return any(tuple(mod[:n]) in test_modules for n in range(1, len(mod) + 1))
files = [f for f in files if module_of(f) is None or not is_test(module_of(f))]
edges = {}
level = int(sys.argv[2]) if len(sys.argv) > 2 else 1
def key(mod): return '::'.join(mod[:level]) or 'crate'
for f in files:
    mod = module_of(f)
    if mod is None: continue
    text = open(f).read()
    # drop #[cfg(test)] modules at the end of the file: tests may reach anywhere
    cut = text.find('#[cfg(test)]\nmod tests')
    if cut >= 0: text = text[:cut]
    text = re.sub(r'//.*', '', text)
    src = key(mod)
    targets = set()
    for m in re.finditer(r'\bcrate::((?:[a-z_0-9]+::)*[a-z_0-9]+)', text):
        targets.add(key(m.group(1).split('::')))
    # `use crate::{a, b::c}` groups
    for m in re.finditer(r'\bcrate::\{([^;]*?)\};', text, re.S):
        for part in re.findall(r'(?:^|,)\s*([a-z_0-9]+)', m.group(1)):
            targets.add(key([part]))
    for m in re.finditer(r'\bsuper::((?:[a-z_0-9]+::)*[a-z_0-9]+)', text):
        # super:: from a file in module path mod: parent is mod[:-1] if file is mod.rs-like else mod[:-1]
        parent = mod[:-1]
        targets.add(key(parent + m.group(1).split('::')))
    for t in targets:
        if t != src and not t.startswith(src + '::') and not src.startswith(t + '::'):
            edges.setdefault(src, set()).add(t)
# Tarjan
index = {}; low = {}; stack = []; on = set(); sccs = []; i = [0]
nodes = set(edges) | {t for ts in edges.values() for t in ts}
sys.setrecursionlimit(10000)
def visit(v):
    index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in index: visit(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(sorted(comp))
for v in sorted(nodes):
    if v not in index: visit(v)
for c in sccs:
    print('CYCLE:', ' <-> '.join(c))
    for a in c:
        print('   ', a, '->', sorted(t for t in edges.get(a, ()) if t in c))
if not sccs: print('no cycles among', len(nodes), 'modules')
sys.exit(1 if sccs else 0)
