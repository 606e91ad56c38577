"""free_lists.py on hand-made components (tests/languages.rs runs a rewritten one).

    python3 -m unittest discover -s guest-sdk/python/tests
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import free_lists as fl  # noqa: E402

I32 = fl.I32
COMPONENT = b"\0asm\x0d\x00\x01\x00"


def vec(items):
    return fl.uleb(len(items)) + b"".join(items)


def text(s):
    return fl.uleb(len(s)) + s.encode()


def runtime_module(dealloc_params=5, extra_exports=()):
    """A core module shaped as componentize-py's runtime: a memory import, then
    ``wit_dylib_pop_list`` (function 0) and ``wit_dylib_dealloc_bytes`` (function 1)."""
    types = vec([b"\x60" + vec([bytes([I32])] * 3) + vec([bytes([I32])]),
                 b"\x60" + vec([bytes([I32])] * dealloc_params) + vec([])])
    imports = vec([text("env") + text("memory") + b"\x02\x00\x01"])
    functions = vec([b"\x00", b"\x01"])
    exports = vec([text(fl.POP_LIST) + b"\x00\x00", text(fl.DEALLOC) + b"\x00\x01"]
                  + [text(n) + b"\x00" + fl.uleb(i) for n, i in extra_exports])
    bodies = vec([b"\x04\x00\x41\x00\x0b", b"\x02\x00\x0b"])
    return (b"\0asm\x01\x00\x00\x00" + fl.section(1, types) + fl.section(2, imports)
            + fl.section(3, functions) + fl.section(7, exports) + fl.section(10, bodies))


def other_module():
    return b"\0asm\x01\x00\x00\x00" + fl.section(1, vec([b"\x60\x00\x00"]))


def component(*modules):
    return COMPONENT + b"".join(fl.section(fl.CORE_MODULE, m) for m in modules)


def parse(module):
    """(function type indices, exports by name, code bodies) of a core module."""
    found = {sid: (s, e) for sid, s, e in fl.sections(module, 8, len(module))}
    functions = fl._vector(module, found[3][0], fl.leb)
    exports = {f: i for f, _, i in fl._vector(module, found[7][0], fl._export)}
    count, i = fl.leb(module, found[10][0])
    bodies = []
    for _ in range(count):
        n, i = fl.leb(module, i)
        bodies.append(module[i:i + n])
        i += n
    return functions, exports, bodies


def modules(data):
    return [data[s:e] for sid, s, e in fl.sections(data, 8, len(data)) if sid == fl.CORE_MODULE]


class FreeListsTest(unittest.TestCase):
    def test_pop_list_is_exported_as_a_wrapper_that_defers_freeing_what_it_returns(self):
        data = component(other_module(), runtime_module(extra_exports=[("other", 0)]))
        fixed = fl.rewrite_component(data)
        untouched, runtime = modules(fixed)
        self.assertEqual(untouched, other_module())
        functions, exports, bodies = parse(runtime)
        self.assertEqual(functions, [0, 1, 0], "the wrapper has pop_list's type")
        self.assertEqual(exports, {fl.POP_LIST: 2, fl.DEALLOC: 1, "other": 0})
        wrapper = bodies[2]
        self.assertEqual(wrapper[:3], bytes([1, 2, I32]), "two i32 locals")
        code = wrapper[3:]
        self.assertEqual(code[:8], bytes([0x20, 0, 0x20, 1, 0x20, 2, 0x10, 0]), "calls pop_list")
        # dealloc(cx, ptr, len, align 1, defer 1), then the length is returned
        self.assertIn(bytes([0x20, 0, 0x20, 4, 0x20, 3, 0x41, 1, 0x41, 1, 0x10, 1]), code)
        self.assertEqual(code[-3:], bytes([0x20, 3, 0x0B]))

    def test_a_rewritten_component_is_left_as_it_is(self):
        fixed = fl.rewrite_component(component(runtime_module()))
        self.assertIs(fl.rewrite_component(fixed), fixed)

    def test_components_without_exactly_one_runtime_module_are_refused(self):
        for data, why in [
            (component(other_module()), "found 0"),
            (component(runtime_module(), runtime_module()), "found 2"),
            (component(runtime_module(dealloc_params=3)), "(cx, ptr, size, align, defer)"),
            (b"\0asm\x01\x00\x00\x00", "not a WebAssembly component"),
        ]:
            with self.assertRaises(fl.NotComponentizePy) as e:
                fl.rewrite_component(data)
            self.assertIn(why, str(e.exception))


if __name__ == "__main__":
    unittest.main()
