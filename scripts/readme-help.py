#!/usr/bin/env python3
# Regenerates the help section of README.md from the built binary (target/debug/fcx), for the
# commands e2e_cli_local.rs checks. Run `cargo build -p fcx` first.
import re, subprocess, os
root=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
test=open(f'{root}/crates/fcx/tests/e2e_cli_local.rs').read()
body=test.split('fn readme_shows_the_current_help_of_every_command')[1].split('for cmd in [')[1].split(']')[0]
cmds=re.findall(r'"([^"]*)"', body)
env={k:v for k,v in os.environ.items() if not k.startswith('FCX_')}
blocks=[]
for c in cmds:
    out=subprocess.run([f'{root}/target/debug/fcx',*c.split(),'--help'],capture_output=True,text=True,env=env,check=True).stdout.rstrip()
    title=('fcx '+c).strip()+' --help'
    blocks.append(f'<details><summary><code>{title}</code></summary>\n\n```\n{out}\n```\n\n</details>\n')
readme=open(f'{root}/README.md').read()
start=readme.index('<details><summary><code>fcx --help</code></summary>')
end_marker='See [ARCHITECTURE.md]'
end=readme.index(end_marker)
readme=readme[:start]+'\n'.join(blocks)+'\n'+readme[end:]
open(f'{root}/README.md','w').write(readme)
print(cmds)
