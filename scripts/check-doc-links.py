#!/usr/bin/env python3
# Every relative link in the Markdown documents points to a file that exists, and every
# `#anchor` to a heading of that file (CI runs it; no dependencies).
import re,os,sys,glob
bad=0
files=['README.md','ARCHITECTURE.md','SECURITY.md','BENCHMARKS.md']+glob.glob('docs/*.md')+glob.glob('*/README.md')
def anchors(path):
    out=set()
    for l in open(path):
        if l.startswith('#'):
            t=l.lstrip('#').strip().lower()
            t=re.sub(r'[^\w\- ]','',t).replace(' ','-')
            out.add(t)
    return out
for f in files:
    text=open(f).read()
    for m in re.finditer(r'\]\(([^)\s]+)\)',text):
        url=m.group(1)
        if url.startswith(('http','mailto:')): continue
        path,_,frag=url.partition('#')
        target=os.path.normpath(os.path.join(os.path.dirname(f),path)) if path else f
        if not os.path.exists(target):
            print(f'{f}: missing {url}'); bad+=1; continue
        if frag and target.endswith('.md') and frag not in anchors(target):
            print(f'{f}: no anchor {url}'); bad+=1
sys.exit(1 if bad else 0)
