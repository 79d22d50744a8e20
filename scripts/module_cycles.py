#!/usr/bin/env python3
"""Module cycles in a crate: builds the graph of its top-level modules from the `crate::` paths
each file names (`use crate::{a, b::c}` included; comments and the `#[cfg(test)] mod tests` at
the end of a file excluded; `crate::Item` counts as the crate root, `lib`) and prints every
strongly connected component of more than one module. Exit status 1 when there is one.

Usage: scripts/module_cycles.py [server/src]"""
import re, os, sys
root = sys.argv[1] if len(sys.argv) > 1 else 'server/src'
graph = {}
def strip_tests(txt):
    """Drops the unit-test module and comments (doc comments name modules they do not use)."""
    i = txt.find('#[cfg(test)]\nmod tests')
    txt = txt if i < 0 else txt[:i]
    return re.sub(r'//[^\n]*', '', txt)
for dp, dn, fn in os.walk(root):
    for f in fn:
        if not f.endswith('.rs'): continue
        rel = os.path.relpath(os.path.join(dp, f), root)[:-3]
        top = rel.split('/')[0]
        if top in ('lib', 'main'): top = 'lib' if top == 'lib' else 'main'
        txt = strip_tests(open(os.path.join(dp, f)).read())
        deps = set()
        for m in re.finditer(r'crate::\{([^}]*)\}', txt, re.S):
            for part in m.group(1).split(','):
                part = part.strip()
                if part: deps.add(re.split(r'[:\s]', part)[0])
        for m in re.finditer(r'crate::([A-Za-z_]+)', txt):
            deps.add(m.group(1))
        deps = {('lib' if d[0].isupper() else d) for d in deps if d != 'self'}
        # super:: inside a top-level dir module means its own parent (same top) - ignore
        graph.setdefault(top, set()).update(deps - {top})
nodes = set(graph) | {d for s in graph.values() for d in s}
index, low, stack, on, sccs, n = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)
def sc(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in graph.get(v, ()):
        if w not in index: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(sorted(comp))
for v in sorted(nodes):
    if v not in index: sc(v)
for c in sccs:
    print('cycle:', ' '.join(c))
    for a in c:
        print('   ', a, '->', ' '.join(sorted(d for d in graph.get(a, ()) if d in c)))
if not sccs: print('no module cycles')
sys.exit(1 if sccs else 0)
