"""Operators, and how a batch runs through a fused chain of them.

A batch crosses the boundary as one ``marshal`` object (wit/README.md, Batches of CPython
components): the host turns its framed JSON into the tuple ``(keys, timestamps, values,
inputs)`` before a call and the tuple ``(keys, timestamps, values)`` this returns back into
JSON after it. ``marshal.loads`` and ``marshal.dumps`` are CPython's own C, several times
faster than its ``json`` module, so a batch costs two native calls and, per record, only the
user's functions run as Python. Inside the chain a batch is a set of parallel lists, and
every step over them is one native call that loops in C (``map(f, values)``,
``itertools.compress``). Operators keep records in order, so the output equals the Rust
SDK's record-at-a-time fusion.
"""

import inspect
import json
import marshal
from itertools import chain, compress, repeat

from . import ctx as _ctx
from .ctx import _ENCODER, _dumps, _loads, encode_value  # JSON as serde_json writes it (compact)
from .errors import EddyError
from .text import words as _words
from .text import words_of_lines as _words_of_lines

_encode_str = json.encoder.encode_basestring  # the C implementation, ensure_ascii=False


def _fast_dumps():
    """``_dumps`` without its per-call setup: ``JSONEncoder.encode`` builds a C encoder for
    every value, which costs more than encoding a small key. This one is built once. Its
    circularity check keeps the containers being encoded in one dict for all calls, so
    after a failed call, which can leave some there, its callers build a new one."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _dumps
    e = _ENCODER
    encode = make({}, e.default, _encode_str, e.indent, e.key_separator,
                  e.item_separator, e.sort_keys, e.skipkeys, e.allow_nan)
    join = "".join
    return lambda v: join(encode(v, 0))


_dumps_fast = _fast_dumps()


def json_texts(vals):
    """The JSON text (a str) of each value: keys, which the host hashes as JSON. Lists of
    plain ints or strs (the common keys) are encoded in one or two native passes."""
    types = set(map(type, vals))
    if len(types) == 1:
        t = types.pop()
        if t is int:
            texts = ("%d\x00" * len(vals) % tuple(vals)).split("\x00")
            texts.pop()
            return texts
        if t is str:
            return list(map(_encode_str, vals))
    global _dumps_fast
    try:
        return list(map(_dumps_fast, vals))
    except BaseException as e:
        _dumps_fast = _fast_dumps()
        if not isinstance(e, (TypeError, ValueError)):
            raise
        for v in vals:
            try:
                _dumps(v)
            except (TypeError, ValueError) as e:
                raise EddyError(f"cannot encode a {type(v).__name__} as JSON: {e}") from None
        raise


class Batch:
    """Records inside a chain, as parallel lists. ``keys`` and ``ts`` are None when no
    record has one; a key is its JSON (bytes as the host gave it, a str as ``key_by`` made
    it), a timestamp an int (None for a record without). ``inputs`` says which input each
    record came by (1: the second of a two-input operator), or is None when all came by
    the first."""

    __slots__ = ("keys", "ts", "vals", "inputs")

    def __init__(self, keys, ts, vals, inputs=None):
        self.keys = keys
        self.ts = ts
        self.vals = vals
        self.inputs = inputs

    def __len__(self):
        return len(self.vals)


def decode_batch(data):
    """The batch the host gave (wit/README.md)."""
    if not data:
        return Batch(None, None, [])
    keys, ts, vals, inputs = marshal.loads(data)
    return Batch(keys, ts, vals, inputs)


def encode_batch(b):
    """The batch for the host: the marshal of ``(keys, timestamps, values)``, version 2,
    which writes no object references (the host refuses them). A value marshal cannot
    write (an instance of a class, a subclass of dict, int or tuple) goes through JSON
    first, which knows those or names what it cannot encode; sets, bytes, NaN and the
    like marshal writes, and the host refuses by name."""
    if not len(b):
        return b""
    try:
        return marshal.dumps((b.keys, b.ts, b.vals), 2)
    except ValueError:
        vals = _loads("[" + ",".join(json_texts(b.vals)) + "]")
        return marshal.dumps((b.keys, b.ts, vals), 2)


# --- Operators -----------------------------------------------------------------------------


class Operator:
    """One registry entry. ``process`` maps a batch to a batch; ``on_timer`` (keyed process
    functions only) returns the batch a fired timer emits, or None."""

    on_timer = None

    def process(self, b):
        raise NotImplementedError


class Map(Operator):
    def __init__(self, f):
        self.f = f

    def process(self, b):
        return Batch(b.keys, b.ts, list(map(self.f, b.vals)))


class FlatMap(Operator):
    def __init__(self, f):
        self.f = f

    def process(self, b):
        if b.keys is None and b.ts is None:
            if self.f is _words:
                # The SDK's tokenizer splits a whole batch of lines at once.
                try:
                    return Batch(None, None, _words_of_lines(b.vals))
                except TypeError:
                    pass  # not all strs: words() reports it below
            return Batch(None, None, list(chain.from_iterable(map(self.f, b.vals))))
        outs = map(self.f, b.vals)
        outs = list(map(list, outs))
        counts = list(map(len, outs))
        keys = None if b.keys is None else list(chain.from_iterable(map(repeat, b.keys, counts)))
        ts = None if b.ts is None else list(chain.from_iterable(map(repeat, b.ts, counts)))
        return Batch(keys, ts, list(chain.from_iterable(outs)))


class Filter(Operator):
    def __init__(self, f):
        self.f = f

    def process(self, b):
        keep = list(map(self.f, b.vals))
        if all(keep):
            return b

        def pick(col):
            return None if col is None else list(compress(col, keep))
        return Batch(pick(b.keys), pick(b.ts), pick(b.vals), pick(b.inputs))


class KeyBy(Operator):
    def __init__(self, f):
        self.f = f

    def process(self, b):
        # A key is JSON wherever it goes: the host hashes its bytes to a key group.
        return Batch(json_texts(list(map(self.f, b.vals))), b.ts, b.vals, b.inputs)


def _emitted(result, ctx):
    """A process function emits with ``ctx.collect``, or by being a generator."""
    if result is None:
        return
    if inspect.isgenerator(result):
        ctx._out.extend(result)
        return
    raise EddyError(f"a process function emits with ctx.collect(...) or yield; "
                    f"it returned a {type(result).__name__}")


_NO_KEY = "keyed operator received a record without a key (is its input a key_by?)"


def _need_keys(b):
    if b.keys is None or None in b.keys:
        raise EddyError(_NO_KEY)
    return b.keys


class KeyedProcess(Operator):
    """A keyed ``f(ctx, value)`` with state and timers; ``on_timer(ctx, timer)``. A
    two-input one (``KeyedCoProcess``) has a function per input."""

    def __init__(self, f, on_timer, second=None, ctxs=None):
        self.fs = (f, second)
        self.timer_fn = on_timer
        # The context per input; a keyed one's records need a key (a broadcast input's
        # records have none).
        self.ctxs = ctxs or (_ctx.KeyedContext(),) * 2
        self.ctx = self.ctxs[0]
        self.keyed = tuple(isinstance(c, _ctx.KeyedContext) for c in self.ctxs)
        if on_timer is not None:
            self.on_timer = self._on_timer

    def process(self, b):
        fs, ctxs, keyed = self.fs, self.ctxs, self.keyed
        keys = b.keys or repeat(None)
        out_k, out_t, out_v = [], [], []
        for i, k, t, v in zip(_inputs(b), keys, b.ts or repeat(None), b.vals):
            ctx = ctxs[i]
            if keyed[i]:
                if k is None:
                    raise EddyError(_NO_KEY)
                _ctx.set_record_key(k)
            ctx._out = out = []
            ctx.timestamp = t
            _emitted(fs[i](ctx, v), ctx)
            if out:
                out_v += out
                out_k += [k] * len(out)
                out_t += [t] * len(out)
        return Batch(out_k, out_t if b.ts is not None else None, out_v)

    def _on_timer(self, key, timer):
        ctx = self.ctx
        _ctx.set_record_key(key)
        ctx._out = out = []
        t = timer.timestamp if timer.domain == _ctx.TimeDomain.EVENT_TIME else None
        ctx.timestamp = t
        _emitted(self.timer_fn(ctx, timer), ctx)
        n = len(out)
        return Batch([key] * n, None if t is None else [t] * n, out)


def _inputs(b):
    """Which input each record came by: 0, or 1 for a two-input operator's second."""
    return b.inputs or repeat(0)


class CoMap(Operator):
    """``first(value)`` or ``second(value)`` by the input a record came by."""

    def __init__(self, first, second):
        self.fs = (first, second)

    def process(self, b):
        fs = self.fs
        return Batch(b.keys, b.ts, [fs[i](v) for i, v in zip(_inputs(b), b.vals)])


class CoFlatMap(Operator):
    """Any number of outputs per record, by the function of its input."""

    def __init__(self, first, second):
        self.fs = (first, second)

    def process(self, b):
        fs = self.fs
        outs = [list(fs[i](v)) for i, v in zip(_inputs(b), b.vals)]
        counts = list(map(len, outs))
        keys = None if b.keys is None else list(chain.from_iterable(map(repeat, b.keys, counts)))
        ts = None if b.ts is None else list(chain.from_iterable(map(repeat, b.ts, counts)))
        return Batch(keys, ts, list(chain.from_iterable(outs)))


class CoProcess(Operator):
    """``first(ctx, value)`` or ``second(ctx, value)`` by the input a record came by."""

    def __init__(self, first, second, ctxs=None):
        self.fs = (first, second)
        self.ctxs = ctxs or (_ctx.Context(),) * 2

    def process(self, b):
        fs, ctxs = self.fs, self.ctxs
        out_k, out_t, out_v = [], [], []
        for i, k, t, v in zip(_inputs(b), b.keys or repeat(None), b.ts or repeat(None), b.vals):
            ctx = ctxs[i]
            ctx._out = out = []
            ctx.timestamp = t
            _emitted(fs[i](ctx, v), ctx)
            if out:
                out_v += out
                out_k += [k] * len(out)
                out_t += [t] * len(out)
        return Batch(out_k if b.keys is not None else None,
                     out_t if b.ts is not None else None, out_v)


class Process(CoProcess):
    """``f(ctx, value)`` per record; outputs keep the input's key and timestamp."""

    def __init__(self, f):
        super().__init__(f, None)


class KeyedCoProcess(KeyedProcess):
    """A keyed co-process function: one keyed state and timers for both inputs."""

    def __init__(self, first, second, on_timer):
        super().__init__(first, on_timer, second)


class BroadcastProcess(CoProcess):
    """``element(ctx, value)`` reading broadcast state, ``broadcast(ctx, value)`` (the
    broadcast input's, in every subtask) changing it."""

    def __init__(self, element, broadcast):
        super().__init__(element, broadcast, (_ctx.ReadOnlyBroadcastContext(), _ctx.BroadcastContext()))


class KeyedBroadcastProcess(KeyedProcess):
    """A keyed ``element(ctx, value)`` with keyed state, timers and broadcast state to read;
    ``broadcast(ctx, value)`` with no key, changing broadcast state."""

    def __init__(self, element, broadcast, on_timer):
        ctxs = (_ctx.KeyedReadOnlyBroadcastContext(), _ctx.BroadcastContext())
        super().__init__(element, on_timer, broadcast, ctxs)


class Reduce(Operator):
    """Folds each key's values in value state ``__reduce``; emits every running result."""

    STATE = "__reduce"

    def __init__(self, f):
        self.f = f

    def process(self, b):
        f = self.f
        keys = _need_keys(b)
        out = []
        get, put = _ctx.host_value_get, _ctx.host_value_set
        for k, v in zip(keys, b.vals):
            _ctx.set_record_key(k)
            acc = get(self.STATE)
            nxt = v if acc is None else f(_loads(acc), v)
            put(self.STATE, encode_value(nxt))
            out.append(nxt)
        return Batch(keys, b.ts, out)


# --- Chains --------------------------------------------------------------------------------


def run_chain(ops, b):
    for op in ops:
        if not len(b):
            break
        b = op.process(b)
    return b


def run_batch(ops, data):
    return encode_batch(run_chain(ops, decode_batch(data)))


def run_timer(ops, key, timer):
    """Hands a fired timer to each operator, first to last; what one emits runs through the
    operators after it (as the Rust SDK does). The call returns one batch of all of it."""
    out = []
    for i, op in enumerate(ops):
        if op.on_timer is not None:
            b = op.on_timer(key, timer)
            if len(b):
                out.append(run_chain(ops[i + 1:], b))
    return encode_batch(_concat(out))


def _concat(batches):
    """One batch of the records of ``batches``, in order."""
    if len(batches) == 1:
        return batches[0]

    def column(name):
        cols = [getattr(b, name) for b in batches]
        if all(c is None for c in cols):
            return None
        return list(chain.from_iterable(c if c is not None else repeat(None, len(b))
                                        for c, b in zip(cols, batches)))
    return Batch(column("keys"), column("ts"), list(chain.from_iterable(b.vals for b in batches)))
