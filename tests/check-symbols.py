#!/usr/bin/env python3
"""libhasp's exports against its version script, both ways.

Usage: check-symbols.py [--man MAN_DIR] NM LIBHASP_SO LIBHASP_SYM HASP_H [DAEMON_ARCHIVE...]

Fails, naming each difference, unless:
- every symbol libhasp.sym lists is exported, in the node that lists it;
- every symbol libhasp.so exports is listed there, in that node, and the
  version nodes it defines are the ones libhasp.sym defines;
- every hasp_ function hasp.h declares is listed, and every listed symbol is
  declared there;
- no global symbol defined in a daemon archive (proto_daemon, haspd_core,
  locktable) is in libhasp.so at all, exported or not: the library links no
  daemon object. (Skipped if libhasp.so is stripped.)

With --man, every function has a man page ("man hasp_lock" works after
install): every symbol libhasp.sym lists is in the function_pages of
MAN_DIR/meson.build, as a page of its own (MAN_DIR/NAME.3.scd) or as
another name of one, and named in that page's NAME section; every name in
those sections is a listed symbol; and libhasp.3.scd's SYNOPSIS declares
every listed symbol.
"""
import re
import subprocess
import sys


def strip_c_comments(text):
    return re.sub(r"/\*.*?\*/|//[^\n]*", " ", text, flags=re.S)


def version_script(path):
    """{symbol: node} and the nodes in order, from a GNU ld version script."""
    text = strip_c_comments(open(path).read())
    text = re.sub(r"#[^\n]*", " ", text)
    symbols, nodes = {}, []
    for node, body in re.findall(r"(\w+)\s*\{(.*?)\}\s*\w*\s*;", text, flags=re.S):
        nodes.append(node)
        scope = "global"
        for token in re.findall(r"\w+:|[^\s;]+;?", body):
            if token.endswith(":"):
                scope = token[:-1]
                continue
            name = token.rstrip(";")
            if scope != "global" or not name:
                continue
            if name in symbols:
                sys.exit(f"{path}: {name} is listed twice ({symbols[name]}, {node})")
            symbols[name] = node
    if not nodes:
        sys.exit(f"{path}: no version node found")
    return symbols, nodes


def nm(tool, *args):
    out = subprocess.run([tool, *args], check=True, capture_output=True, text=True)
    return out.stdout.splitlines()


def exports(tool, lib):
    """{symbol: node or None} of the defined dynamic symbols, and the version
    nodes (absolute symbols named after them)."""
    symbols, nodes = {}, set()
    for line in nm(tool, "-D", "--defined-only", lib):
        fields = line.split()
        if len(fields) < 3:
            continue
        kind, name = fields[1], fields[2]
        base, _, node = name.partition("@")
        node = node.lstrip("@") or None
        if kind == "A" and node is None:
            nodes.add(base)
        else:
            symbols[base] = node
    return symbols, nodes


def declared(header):
    """The hasp_ functions a header declares (names followed by a '(')."""
    text = strip_c_comments(open(header).read())
    return set(re.findall(r"\b(hasp_\w+)\s*\(", text))


def man_pages(man_dir):
    """{page: [other names]} of function_pages in MAN_DIR/meson.build."""
    text = open(f"{man_dir}/meson.build").read()
    block = re.search(r"function_pages\s*=\s*\{(.*?)\n\}", text, flags=re.S)
    if not block:
        sys.exit(f"{man_dir}/meson.build: no function_pages")
    body = re.sub(r"#[^\n]*", " ", block.group(1))
    return {page: re.findall(r"'(\w+)'", names)
            for page, names in re.findall(r"'(\w+)'\s*:\s*\[(.*?)\]", body, flags=re.S)}


def section(path, name):
    """The text of a scdoc page's section (between '# NAME' and the next)."""
    m = re.search(rf"^# {name}\n(.*?)(?=^# |\Z)", open(path).read(), flags=re.S | re.M)
    return m.group(1) if m else ""


def check_man(man_dir, listed):
    errors = []
    pages = man_pages(man_dir)
    where = {}
    for page, others in pages.items():
        for name in [page] + others:
            if name in where:
                errors.append(f"{name}: a man page of {where[name]} and of {page} (man/meson.build)")
            where[name] = page
    for page, others in sorted(pages.items()):
        path = f"{man_dir}/{page}.3.scd"
        try:
            named = set(re.findall(r"\b(hasp_\w+)\b", section(path, "NAME").split(" - ")[0]))
        except OSError:
            errors.append(f"{page}: in man/meson.build, but there is no man/{page}.3.scd")
            continue
        for name in sorted(set([page] + others) - named):
            errors.append(f"{name}: its man page {page}(3) does not name it in NAME")
        for name in sorted(named - set([page] + others)):
            errors.append(f"{name}: named in {page}(3), not one of its names in man/meson.build")
        for name in sorted(named - set(listed)):
            errors.append(f"{name}: has a man page ({page}(3)), not listed in libhasp.sym")
    for name, node in sorted(listed.items()):
        if name not in where:
            errors.append(f"{name}: in {node}, no man page (add it to function_pages in "
                          f"man/meson.build, and to a page's NAME)")
    synopsis = set(re.findall(r"\b(hasp_\w+)\s*\(", section(f"{man_dir}/libhasp.3.scd",
                                                               "SYNOPSIS")))
    for name in sorted(set(listed) - synopsis):
        errors.append(f"{name}: not in libhasp(3)'s SYNOPSIS")
    return errors, len(pages)


def daemon_symbols(tool, archives):
    names = set()
    for archive in archives:
        for line in nm(tool, "--defined-only", "--extern-only", archive):
            fields = line.split()
            if len(fields) == 3:
                names.add(fields[2])
    return names


def main():
    argv = sys.argv[1:]
    man_dir = None
    if argv[:1] == ["--man"] and len(argv) > 1:
        man_dir, argv = argv[1], argv[2:]
    if len(argv) < 4:
        sys.exit(__doc__)
    tool, lib, sym, header, archives = argv[0], argv[1], argv[2], argv[3], argv[4:]
    errors = []

    listed, listed_nodes = version_script(sym)
    exported, exported_nodes = exports(tool, lib)
    for name, node in sorted(listed.items()):
        if name not in exported:
            errors.append(f"{name}: listed in {node} of libhasp.sym, not exported")
        elif exported[name] != node:
            errors.append(f"{name}: listed in {node}, exported in {exported[name] or 'no node'}")
    for name, node in sorted(exported.items()):
        if name not in listed:
            errors.append(f"{name}@{node or ''}: exported, not listed in libhasp.sym")
    for node in sorted(set(listed_nodes) ^ exported_nodes):
        where = "libhasp.sym" if node in listed_nodes else "libhasp.so"
        errors.append(f"version node {node}: only in {where}")

    functions = declared(header)
    for name in sorted(functions - set(listed)):
        errors.append(f"{name}: declared in hasp.h, not listed in libhasp.sym")
    for name in sorted(set(listed) - functions):
        errors.append(f"{name}: listed in libhasp.sym, not declared in hasp.h")

    everything = set(line.split()[-1] for line in nm(tool, lib) if len(line.split()) >= 2)
    if everything:
        for name in sorted(daemon_symbols(tool, archives) & everything):
            errors.append(f"{name}: daemon code in libhasp.so")
    else:
        print(f"{lib} is stripped: daemon objects not looked for")

    if man_dir:
        man_errors, npages = check_man(man_dir, listed)
        errors += man_errors
        print(f"{npages} function pages in {man_dir}: {len(man_errors)} without a page or misnamed")

    for e in errors:
        print(e)
    print(f"{len(listed)} symbols in {len(listed_nodes)} nodes, {len(functions)} functions "
          f"in hasp.h, {len(exported)} exported: {len(errors)} differences")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
