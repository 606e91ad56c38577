"""Makes a componentize-py component free the byte lists its Python code hands out.

    python3 guest-sdk/python/free_lists.py COMPONENT.wasm     (rewritten in place)

Why: componentize-py 0.25.1's runtime lowers a Python ``bytes`` into a ``list<u8>`` -- the
batch an operator returns, a key or value it gives a state import -- by copying it into a
fresh allocation (``maybe_pop_list``), and nothing ever frees that copy: wit-dylib's glue
leaves a list the interpreter lowers whole to the interpreter, which forgets it. A Python
operator's linear memory grew by every byte it emitted and every state write, until the
memory limit ended the job (Nexmark q0 over 4 M events hit 512 MiB).

The fix: the runtime's ``wit_dylib_dealloc_bytes(cx, ptr, size, align, defer=1)`` frees an
allocation when the call context ``cx`` is dropped, which is after post-return for an
export's results and after the host returns for an import's arguments, when the host has
copied them. This script appends to the runtime module a function that calls the original
``wit_dylib_pop_list`` and then defers the deallocation of the list it returned (the pointer
is non-null exactly for the byte lists copied whole, allocated with alignment 1), and points
the export ``wit_dylib_pop_list`` at it. Nothing else in the component changes, and a
component already rewritten is left as it is.

Were a later componentize-py to free the copy itself, this would free it twice: run by the
interpreter that has componentize-py installed (as build.sh does), the script refuses any
version not in ``LEAKS_IN``, each checked by hand (its ``maybe_pop_list``) before it is
added.
"""

import importlib.metadata
import sys

POP_LIST = "wit_dylib_pop_list"
DEALLOC = "wit_dylib_dealloc_bytes"
I32 = 0x7F
# Marks a rewritten runtime module (a custom section), so a second run changes nothing.
MARKER = "eddy-frees-popped-lists"
CORE_MODULE = 1  # a component's section id for an embedded core module
# componentize-py versions whose runtime never frees the byte lists it lowers.
LEAKS_IN = {"0.25.1"}


class NotComponentizePy(Exception):
    """The component is not one whose byte lists this script knows how to free."""


def leb(data, i):
    """The unsigned LEB128 at ``data[i:]`` and the offset after it."""
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def uleb(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def name(data, i):
    n, i = leb(data, i)
    return data[i:i + n].decode("utf-8"), i + n


def sections(data, i, end):
    """``(id, start, end)`` of each section's contents from ``i`` to ``end``."""
    while i < end:
        size, start = leb(data, i + 1)
        if start + size > end:
            raise NotComponentizePy(f"section at byte {i} runs past its container")
        yield data[i], start, start + size
        i = start + size


def section(sid, contents):
    return bytes([sid]) + uleb(len(contents)) + contents


def _limits(data, i):
    flags = data[i]
    _, i = leb(data, i + 1)
    if flags & 1:
        _, i = leb(data, i)
    return i


def _imported_functions(data, start):
    """How many of a module's imports are functions (they come before its own)."""
    count, i = leb(data, start)
    functions = 0
    for _ in range(count):
        _, i = name(data, i)
        _, i = name(data, i)
        kind = data[i]
        i += 1
        if kind == 0:  # function: its type index
            _, i = leb(data, i)
            functions += 1
        elif kind == 1:  # table: element type, limits
            i = _limits(data, i + 1)
        elif kind == 2:  # memory: limits
            i = _limits(data, i)
        elif kind == 3:  # global: value type, mutability
            i += 2
        elif kind == 4:  # tag: attribute, type index
            _, i = leb(data, i + 1)
        else:
            raise NotComponentizePy(f"unknown import kind {kind}")
    return functions


def _types(data, start):
    count, i = leb(data, start)
    types = []
    for _ in range(count):
        if data[i] != 0x60:
            raise NotComponentizePy("a type other than a function type")
        n, i = leb(data, i + 1)
        params = bytes(data[i:i + n])
        n, i = leb(data, i + n)
        types.append((params, bytes(data[i:i + n])))
        i += n
    return types


def _vector(data, start, item):
    count, i = leb(data, start)
    out = []
    for _ in range(count):
        value, i = item(data, i)
        out.append(value)
    return out


def _export(data, i):
    field, i = name(data, i)
    kind = data[i]
    index, i = leb(data, i + 1)
    return (field, kind, index), i


def _wrapper_body(pop_list, dealloc):
    """``len = pop_list(cx, ty, ret); if *ret: dealloc(cx, *ret, len, 1, defer=1); len``."""
    code = bytes([
        0x20, 0, 0x20, 1, 0x20, 2, 0x10]) + uleb(pop_list) + bytes([
        0x21, 3,                        # local.set len
        0x20, 2, 0x28, 2, 0, 0x22, 4,   # local.tee ptr (i32.load ret)
        0x04, 0x40,                     # if ptr != 0
        0x20, 0, 0x20, 4, 0x20, 3, 0x41, 1, 0x41, 1, 0x10]) + uleb(dealloc) + bytes([
        0x0B,                           # end
        0x20, 3,                        # local.get len
        0x0B])
    body = bytes([1, 2, I32]) + code    # two i32 locals: len, ptr
    return uleb(len(body)) + body


def rewrite_module(data, start, end):
    """The module's bytes with ``wit_dylib_pop_list`` freeing what it returns, or None when
    it is not the runtime module."""
    found = {}
    for sid, s, e in sections(data, start + 8, end):
        found.setdefault(sid, (s, e))
    if 7 not in found:
        return None
    exports = _vector(data, found[7][0], _export)
    by_name = {f: index for f, kind, index in exports if kind == 0}
    if POP_LIST not in by_name or DEALLOC not in by_name:
        return None
    if 3 not in found or 10 not in found or 1 not in found:
        raise NotComponentizePy("the runtime module lacks a type, function or code section")
    imported = _imported_functions(data, found[2][0]) if 2 in found else 0
    functions = _vector(data, found[3][0], leb)
    types = _types(data, found[1][0])

    def signature(index):
        if index < imported:
            raise NotComponentizePy(f"{index} is an imported function")
        return types[functions[index - imported]]

    pop_list, dealloc = by_name[POP_LIST], by_name[DEALLOC]
    if signature(pop_list) != (bytes([I32] * 3), bytes([I32])):
        raise NotComponentizePy(f"{POP_LIST} has an unexpected signature")
    if signature(dealloc) != (bytes([I32] * 5), b""):
        raise NotComponentizePy(f"{DEALLOC} is not (cx, ptr, size, align, defer)")
    wrapper = imported + len(functions)

    out = bytearray(data[start:start + 8])
    for sid, s, e in sections(data, start + 8, end):
        contents = data[s:e]
        if sid == 3:
            count, i = leb(data, s)
            contents = uleb(count + 1) + data[i:e] + uleb(functions[pop_list - imported])
        elif sid == 10:
            count, i = leb(data, s)
            contents = uleb(count + 1) + data[i:e] + _wrapper_body(pop_list, dealloc)
        elif sid == 7:
            contents = uleb(len(exports)) + b"".join(
                uleb(len(f.encode())) + f.encode() + bytes([kind]) +
                uleb(wrapper if (f, kind) == (POP_LIST, 0) else index)
                for f, kind, index in exports)
        out += section(sid, bytes(contents))
    out += section(0, uleb(len(MARKER)) + MARKER.encode())
    return bytes(out)


def rewrite_component(data):
    """The component with its runtime module rewritten; raises NotComponentizePy if it has
    none. Returns the input unchanged when it was rewritten before."""
    if data[:4] != b"\0asm" or data[4:8] != b"\x0d\x00\x01\x00":
        raise NotComponentizePy("not a WebAssembly component")
    out = bytearray(data[:8])
    rewritten = already = 0
    for sid, s, e in sections(data, 8, len(data)):
        module = None
        if sid == CORE_MODULE:
            if any(i == 0 and name(data, a)[0] == MARKER for i, a, _ in sections(data, s + 8, e)):
                already += 1
            else:
                module = rewrite_module(data, s, e)
        out += section(sid, data[s:e] if module is None else module)
        rewritten += module is not None
    if rewritten + already != 1:
        raise NotComponentizePy(f"expected one runtime module exporting {POP_LIST}, "
                                f"found {rewritten + already}")
    return bytes(out) if rewritten else data


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} COMPONENT.wasm", file=sys.stderr)
        return 2
    path = argv[1]
    try:
        version = importlib.metadata.version("componentize-py")
    except importlib.metadata.PackageNotFoundError:
        version = None  # run apart from the build: the component says what it is
    if version is not None and version not in LEAKS_IN:
        print(f"{path}: componentize-py {version} is not known to leak byte lists (this script "
              f"was checked against {', '.join(sorted(LEAKS_IN))}): check its maybe_pop_list, "
              f"then add it to LEAKS_IN or drop this step", file=sys.stderr)
        return 1
    with open(path, "rb") as f:
        data = f.read()
    try:
        fixed = rewrite_component(data)
    except (NotComponentizePy, IndexError, UnicodeDecodeError) as e:
        print(f"{path}: cannot free its byte lists: {e}", file=sys.stderr)
        return 1
    if fixed is not data:
        with open(path, "wb") as f:
            f.write(fixed)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
