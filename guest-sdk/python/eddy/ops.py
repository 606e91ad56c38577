"""Operators, and how a batch runs through a fused chain of them.

Interpreted Python pays per bytecode, not per byte, so the runtime works a batch at a time
rather than a record at a time: a batch inside the chain is a set of parallel lists (keys,
timestamps, values), and every step over them is one native call that loops in C --
``map(f, values)``, ``itertools.compress``, one ``bytes.split`` or ``struct`` call to
unframe a batch, one ``json.loads`` (or ``map(int, ...)``) to decode it, one ``%`` format or
``str.join`` to encode and frame the output. Per record, only the user's function runs as
Python. Operators keep records in order, so the output equals the Rust SDK's
record-at-a-time fusion.

Values are decoded from JSON only when an operator reads them, and encoded only where they
leave the chain; ``filter`` and ``key_by`` pass the bytes of the values they keep unchanged.
"""

import inspect
import json
import re
import struct
from itertools import chain, compress, repeat
from operator import getitem, is_

from . import ctx as _ctx
from .ctx import _ENCODER, _dumps, _loads, encode_value  # JSON as serde_json writes it (compact)
from .errors import EddyError
from .text import words as _words
from .text import words_of_lines as _words_of_lines

_encode_str = json.encoder.encode_basestring  # the C implementation, ensure_ascii=False


def _fast_dumps(item_separator=None):
    """``_dumps`` without its per-call setup: ``JSONEncoder.encode`` builds a C encoder for
    every value, which cost more than the encoding of a Nexmark bid. This one is built once.
    Its circularity check keeps the containers being encoded in one dict for all calls, so
    after a failed call, which can leave some there, its callers build a new one."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None if item_separator else _dumps
    e = _ENCODER
    encode = make({}, e.default, _encode_str, e.indent, e.key_separator,
                  item_separator or e.item_separator, e.sort_keys, e.skipkeys, e.allow_nan)
    join = "".join
    return lambda v: join(encode(v, 0))


_dumps_fast = _fast_dumps()
# Separates items by NUL, which JSON text holds nowhere else: see _dict_rows.
_dumps_nul = _fast_dumps("\x00")
# The keys of the first row of batches whose rows hold lists: _dict_rows gives up on them.
_LISTS_INSIDE = set()


def _dict_rows(vals):
    """The JSON texts of ``vals``, all dicts, joined by NULs, from one encoder call for the
    whole batch (a call per row spent a tenth of a Python query starting and growing its
    output); else None. Between a dict's members a NUL is followed by a key's quote, so
    those become commas; between two rows, by a brace. If no other NUL is left (one would
    be between a nested list's items), the n - 1 left part the rows."""
    global _dumps_nul
    shape = tuple(vals[0])
    if _dumps_nul is None or shape in _LISTS_INSIDE:
        return None
    try:
        text = _dumps_nul(vals)
    except BaseException:
        _dumps_nul = _fast_dumps("\x00")
        return None  # _texts names the value
    body = text[1:-1].replace('\x00"', ',"')
    if body.count("\x00") != len(vals) - 1:
        if len(_LISTS_INSIDE) >= 64:
            _LISTS_INSIDE.clear()
        _LISTS_INSIDE.add(shape)
        return None
    return body


def _texts(vals):
    """The JSON text (a str) of each value, or all of them joined by NULs (one str) when
    they are dicts encoded in one call. Lists of plain ints or strs (the common cases) are
    encoded in one or two native passes over the whole list."""
    types = set(map(type, vals))
    if len(types) == 1:
        t = types.pop()
        if t is int:
            texts = ("%d\x00" * len(vals) % tuple(vals)).split("\x00")
            texts.pop()
            return texts
        if t is str:
            return list(map(_encode_str, vals))
        rows = _dict_rows(vals) if t is dict else None
        if rows is not None:
            return rows
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


def json_texts(vals):
    """The JSON text (a str) of each value."""
    texts = _texts(vals)
    return texts.split("\x00") if type(texts) is str else texts


def utf8(texts):
    """UTF-8 bytes of each JSON text, in three native passes (JSON escapes NUL, so NUL can
    separate the texts)."""
    if not texts:
        return []
    return "\x00".join(texts).encode().split(b"\x00")


def encode_values(vals):
    """The JSON bytes of each value."""
    if not vals:
        return []
    texts = _texts(vals)
    return texts.encode().split(b"\x00") if type(texts) is str else utf8(texts)


def decode_values(raw):
    """The values of a list of JSON texts: integers by ``int`` (which reads exactly the
    JSON integers a producer writes), everything else by one ``json.loads`` of the list
    joined into an array. Malformed input is found and named record by record."""
    if not raw:
        return []
    first = raw[0][:1]
    if first.isdigit() or first == b"-":
        try:
            return list(map(int, raw))
        except ValueError:
            pass
    try:
        vals = _loads(b"[" + b",".join(raw) + b"]")
        if len(vals) == len(raw):
            return vals
    except ValueError:
        pass
    out = []
    for b in raw:
        try:
            out.append(_loads(b))
        except ValueError as e:
            text = bytes(b[:200]).decode("utf-8", "replace")
            raise EddyError(f"cannot decode a JSON value from {text!r}: {e}") from None
    return out


class Batch:
    """Records inside a chain, as parallel lists. ``keys``/``ts`` are None when no record
    has one; keys are JSON bytes, or JSON texts (str) when ``key_by`` made them. ``ts``
    holds ints (None for a record without), or each record's 8-byte stamp as it came
    (unframed in bulk, all records with one): most chains only pass event times on, so
    they are read as ints (:meth:`times`) only by an operator that needs them. ``raw``
    (JSON bytes) and ``vals`` (Python values) hold the values, either or both, converted
    lazily; ``texts`` may hold the values' JSON texts (str) when ``key_by`` found the keys
    to be the values themselves. ``inputs`` says which input each record came by (1: the
    second of a two-input operator), or is None when all came by the first."""

    __slots__ = ("keys", "ts", "raw", "vals", "texts", "inputs")

    def __init__(self, keys, ts, raw, vals, texts=None, inputs=None):
        self.keys = keys
        self.ts = ts
        self.raw = raw
        self.vals = vals
        self.texts = texts
        self.inputs = inputs

    def __len__(self):
        return len(self.raw if self.vals is None else self.vals)

    def values(self):
        if self.vals is None:
            self.vals = decode_values(self.raw)
        return self.vals

    def times(self):
        """The event times as ints (None for a record without)."""
        ts = self.ts
        if ts and type(ts[0]) is bytes:
            self.ts = ts = list(struct.unpack("<%dq" % len(ts), b"".join(ts)))
        return ts

    def encoded(self):
        if self.raw is None:
            self.raw = utf8(self.texts) if self.texts is not None else encode_values(self.vals)
        return self.raw


# --- The framing of wit/README.md -------------------------------------------------------


class _Lengths(dict):
    """``n -> n as u32 little-endian``, filled on demand, so ``map(LEN.__getitem__, ...)``
    makes every length header natively."""

    def __missing__(self, n):
        b = n.to_bytes(4, "little")
        self[n] = b
        return b


class _Headers(dict):
    """``n -> flags 0 + n as u32``: the whole header of a record without key or timestamp."""

    def __missing__(self, n):
        b = b"\x00" + n.to_bytes(4, "little")
        self[n] = b
        return b


_LEN = _Lengths()
_HDR0 = _Headers()
for _n in range(1024):
    _LEN[_n]
    _HDR0[_n]
_TS = struct.Struct("<q")
_FLAG_KEY, _FLAG_TS = 1, 2
# Set by the host's input gate on records that came by a two-input operator's second input.
_FLAG_SECOND_INPUT = 8

# Fast unframing of batches whose records all have the same flags and fields shorter than
# 64 KiB: one ``re.split`` at the record headers. JSON text never holds a byte below 0x09
# (control characters are escaped), and flags are 0-3, so the search for the next header
# skips a value at the speed of a scan for one byte (matching the value's bytes against a
# class instead was a tenth of a Python query); the pieces between headers are the values.
# The pieces and the headers make up the batch, so the split is right exactly when every
# length a header gives (captured, two bytes) is that of the field after it: that is checked.
_J = rb"([^\x00-\x08]+)"
_FAST = {
    0: re.compile(rb"\x00(..)\x00\x00", re.S),
    _FLAG_KEY: re.compile(rb"\x01(..)\x00\x00" + _J + rb"(..)\x00\x00", re.S),
    _FLAG_TS: re.compile(rb"\x02(.{8})(..)\x00\x00", re.S),
    _FLAG_KEY | _FLAG_TS: re.compile(rb"\x03(.{8})(..)\x00\x00" + _J + rb"(..)\x00\x00", re.S),
}


class _Short(dict):
    """``n -> n as u16 little-endian``, or four bytes (which match no header) past it."""

    def __missing__(self, n):
        b = n.to_bytes(2 if n < 65536 else 4, "little")
        if n < 65536:
            self[n] = b
        return b


_SHORT = _Short()


def _lengths_match(headers, fields):
    """Whether each captured two-byte length is that of its field."""
    return b"".join(headers) == b"".join(map(_SHORT.__getitem__, map(len, fields)))


def _interleave(*columns):
    n = len(columns[0])
    parts = [None] * (n * len(columns))
    for i, col in enumerate(columns):
        parts[i::len(columns)] = col
    return parts


def _frame_uniform(flags, keys, ts, vals):
    """Frames records that all have the given flags (keys/ts lists without Nones)."""
    if flags == 0:
        return b"".join(_interleave(list(map(_HDR0.__getitem__, map(len, vals))), vals))
    columns = [[bytes((flags,))] * len(vals)]
    if flags & _FLAG_TS:
        columns.append(ts if type(ts[0]) is bytes else list(map(_TS.pack, ts)))
    if flags & _FLAG_KEY:
        columns.append(list(map(_LEN.__getitem__, map(len, keys))))
        columns.append(keys)
    columns.append(list(map(_LEN.__getitem__, map(len, vals))))
    columns.append(vals)
    return b"".join(_interleave(*columns))


def _split_values(data):
    """The values of a batch of records without key or timestamp whose values are all
    shorter than 256 bytes (numbers, words): each record is ``00 L 00 00 00 value``, and as
    values hold no NUL, one ``split`` at NUL yields ``L, '', '', value`` per record. Checked
    exactly (every ``L`` one byte equal to its value's length), else None."""
    parts = data.split(b"\x00")
    vals = parts[4::4]
    if parts[0] or len(parts) != 1 + 4 * len(vals):
        return None
    try:
        lens = bytes(map(len, vals))
    except ValueError:  # a value of 256 bytes or more
        return None
    if b"".join(parts[1::4]) != lens or any(parts[2::4]) or any(parts[3::4]):
        return None
    return vals


class _Unpackers(dict):
    """``(length, n) -> struct`` that cuts the values out of ``n`` records of equal
    ``length`` without key or timestamp."""

    def __missing__(self, k):
        if len(self) > 64:
            self.clear()
        u = struct.Struct(("5x%ds" % k[0]) * k[1]).unpack
        self[k] = u
        return u


_UNPACK = _Unpackers()


def _fixed_values(data):
    """The values of a batch whose records have no key or timestamp and values of one
    length (numbers of one width, mostly): every header is checked with one strided slice
    per header byte, and one ``struct`` call cuts out all the values. None otherwise."""
    header = data[:5]
    stride = 5 + int.from_bytes(header[1:], "little")
    n, rest = divmod(len(data), stride)
    if rest or n < 2:
        return None
    for j in range(5):
        if data[j::stride] != header[j:j + 1] * n:
            return None
    return list(_UNPACK[stride - 5, n](data))


def _split_keyed(data):
    """Keys and values of a batch of keyed records without timestamps whose fields are all
    shorter than 256 bytes: each record is ``01 KL 00 00 00 key VL 00 00 00 value``, and as
    JSON holds no NUL, one ``split`` at three NULs cuts it into ``key VL`` and
    ``value 01 KL`` pieces. Checked by framing the result again; else None."""
    parts = data.split(b"\x00\x00\x00")
    if len(parts) % 2 == 0 or len(parts) < 3:
        return None
    keys = list(map(getitem, parts[1::2], repeat(slice(0, -1))))
    tails = parts[2::2]
    last = tails.pop()
    vals = list(map(getitem, tails, repeat(slice(0, -2))))
    vals.append(last)
    if _frame_uniform(_FLAG_KEY, keys, None, vals) != data:
        return None
    return keys, vals


def decode_batch(data):
    """Unframes a batch into a :class:`Batch` of raw values."""
    if not data:
        return Batch(None, None, [], None)
    flags = data[0]
    if flags == 0:
        vals = _fixed_values(data)
        if vals is None:
            vals = _split_values(data)
        if vals is not None:
            return Batch(None, None, vals, None)
    elif flags == _FLAG_KEY:
        split = _split_keyed(data)
        if split is not None:
            return Batch(split[0], None, split[1], None)
    pat = _FAST.get(flags)
    if pat is not None:
        parts = pat.split(data)
        # [b"", (ts,) (key length, key,) value length, value, ...]: a batch starts with a header.
        stride = pat.groups + 1
        if not parts[0] and len(parts) > 1 and (len(parts) - 1) % stride == 0:
            vals = parts[stride::stride]
            keys = parts[stride - 2::stride] if flags & _FLAG_KEY else None
            if _lengths_match(parts[stride - 1::stride], vals) and (
                    keys is None or _lengths_match(parts[stride - 3::stride], keys)):
                ts = parts[1::stride] if flags & _FLAG_TS else None
                return Batch(keys, ts, vals, None)
    return _decode_slow(data)


def _decode_slow(data):
    """The general unframing loop: mixed flags, long fields, and malformed batches."""
    mv = memoryview(data)
    n = len(data)
    keys, ts, vals, inputs = [], [], [], []
    pos = 0
    any_key = any_ts = any_second = False

    def take(start, length, what):
        end = pos + length
        if end > n:
            raise EddyError(f"malformed batch: record at byte {start} ends inside its {what} "
                            f"(batch is {n} bytes)")
        return end

    while pos < n:
        start = pos
        flags = data[pos]
        pos += 1
        if flags & ~(_FLAG_KEY | _FLAG_TS | _FLAG_SECOND_INPUT):
            raise EddyError(f"malformed batch: record at byte {start} has unknown flag bits "
                            f"{flags:#04x}")
        second = 1 if flags & _FLAG_SECOND_INPUT else 0
        inputs.append(second)
        any_second = any_second or second
        if flags & _FLAG_TS:
            end = take(start, 8, "timestamp")
            ts.append(_TS.unpack_from(data, pos)[0])
            pos = end
            any_ts = True
        else:
            ts.append(None)
        if flags & _FLAG_KEY:
            pos = take(start, 4, "key")
            klen = int.from_bytes(mv[pos - 4:pos], "little")
            end = take(start, klen, "key")
            keys.append(bytes(mv[pos:end]))
            pos = end
            any_key = True
        else:
            keys.append(None)
        pos = take(start, 4, "value")
        vlen = int.from_bytes(mv[pos - 4:pos], "little")
        end = take(start, vlen, "value")
        vals.append(bytes(mv[pos:end]))
        pos = end
    return Batch(keys if any_key else None, ts if any_ts else None, vals, None,
                 inputs=inputs if any_second else None)


class _TextHeaders(dict):
    """``n -> flags 0 + n as u32`` as a str of code points < 256 (n < 65536), to frame
    values while they are still text: the latin-1 encoding of header and ASCII value is
    the framed bytes."""

    def __missing__(self, n):
        h = "\x00" + chr(n & 255) + chr(n >> 8) + "\x00\x00"
        self[n] = h
        return h


_THDR = _TextHeaders()
for _n in range(256):
    _THDR[_n]


def _frame_ints(vals):
    """Frames a batch of ints of one width with one ``%`` format operation, or None.

    The checks are native passes too: the sum of the values is an int only if none is a
    float, str, None, ...; bools (which JSON writes as true/false) can only be present if the
    smallest value is 0 or 1. Ints of one sign are as wide as the widest of the smallest and
    the largest, so if those two are equally wide one header fits all."""
    try:
        if type(sum(vals)) is not int:
            return None
    except TypeError:
        return None
    lo, hi = min(vals), max(vals)
    if 0 <= lo <= 1 and set(map(type, vals)) != {int}:
        return None
    width = len("%d" % lo)
    if (lo >= 0 or hi < 0) and width == len("%d" % hi) and width < 128:
        return ((_THDR[width] + "%d") * len(vals) % tuple(vals)).encode()
    return None


class _KeyHeaders(dict):
    """``n -> flags 1 + n as u32`` as a str of code points < 256 (n < 65536)."""

    def __missing__(self, n):
        h = "\x01" + chr(n & 255) + chr(n >> 8) + "\x00\x00"
        self[n] = h
        return h


class _TextLengths(dict):
    """``n -> n as u32`` as a str of code points < 256 (n < 65536)."""

    def __missing__(self, n):
        h = chr(n & 255) + chr(n >> 8) + "\x00\x00"
        self[n] = h
        return h


_KHDR = _KeyHeaders()
_TLEN = _TextLengths()
for _n in range(256):
    _KHDR[_n]
    _TLEN[_n]


def _frame_texts(keys, texts):
    """Frames records without timestamp, given their keys' (or None) and values' JSON
    texts, as one str whose latin-1 encoding is the batch -- which holds when every text
    is ASCII and shorter than 64 KiB; None otherwise."""
    lens = list(map(len, texts))
    longest = max(lens)
    if keys is None:
        columns = [list(map(_THDR.__getitem__, lens)), texts]
    else:
        klens = lens if keys is texts else list(map(len, keys))
        longest = max(longest, max(klens))
        columns = [list(map(_KHDR.__getitem__, klens)), keys,
                   list(map(_TLEN.__getitem__, lens)), texts]
    if longest >= 65536:
        return None
    framed = "".join(_interleave(*columns))
    # Headers of texts shorter than 128 are ASCII: then one O(1) check covers everything.
    if longest < 128:
        ascii = framed.isascii()
    else:
        ascii = "".join(texts).isascii() and (keys is None or "".join(keys).isascii())
    return framed.encode("latin-1") if ascii else None


def encode_batch(b):
    """Frames a :class:`Batch` into the bytes of a WIT ``batch``."""
    if not len(b):
        return b""
    keys, ts = b.keys, b.ts
    text_keys = keys is not None and type(keys[0]) is str
    if b.raw is None and ts is None and (keys is None or text_keys):
        framed = None
        if keys is None and b.texts is None:
            framed = _frame_ints(b.vals)
        if framed is None:
            if b.texts is None:
                b.texts = json_texts(b.vals)
            framed = _frame_texts(keys, b.texts)
        if framed is not None:
            return framed
    if text_keys:
        keys = utf8(keys)
    vals = b.encoded()
    if keys is not None and None not in keys:
        flags = _FLAG_KEY
    elif keys is None:
        flags = 0
    else:
        flags = None
    if flags is not None:
        if ts is not None:
            flags = flags | _FLAG_TS if None not in ts else None
    if flags is not None:
        return _frame_uniform(flags, keys, ts, vals)
    out = bytearray()
    for k, t, v in zip(keys or repeat(None), ts or repeat(None), vals):
        f = (_FLAG_KEY if k is not None else 0) | (_FLAG_TS if t is not None else 0)
        out.append(f)
        if t is not None:
            out += t if type(t) is bytes else _TS.pack(t)
        if k is not None:
            out += _LEN[len(k)]
            out += k
        out += _LEN[len(v)]
        out += v
    return bytes(out)


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
        return Batch(b.keys, b.ts, None, list(map(self.f, b.values())))


class FlatMap(Operator):
    def __init__(self, f):
        self.f = f

    def process(self, b):
        if b.keys is None and b.ts is None:
            if self.f is _words:
                # The SDK's tokenizer splits a whole batch of lines at once.
                try:
                    return Batch(None, None, None, _words_of_lines(b.values()))
                except TypeError:
                    pass  # not all strs: words() reports it below
            return Batch(None, None, None, list(chain.from_iterable(map(self.f, b.values()))))
        outs = map(self.f, b.values())
        outs = list(map(list, outs))
        counts = list(map(len, outs))
        keys = None if b.keys is None else list(chain.from_iterable(map(repeat, b.keys, counts)))
        ts = None if b.ts is None else list(chain.from_iterable(map(repeat, b.ts, counts)))
        return Batch(keys, ts, None, list(chain.from_iterable(outs)))


class Filter(Operator):
    def __init__(self, f):
        self.f = f

    def process(self, b):
        keep = list(map(self.f, b.values()))
        if all(keep):
            return b

        def pick(col):
            return None if col is None else list(compress(col, keep))
        return Batch(pick(b.keys), pick(b.ts), pick(b.raw), pick(b.vals))


class KeyBy(Operator):
    def __init__(self, f):
        self.f = f

    def process(self, b):
        vals = b.values()
        kobjs = list(map(self.f, vals))
        keys = json_texts(kobjs)
        # A key_by is the last operator of its chain (a hash edge follows), so its keys go
        # straight to the framing: they stay texts. When the keys are the values themselves
        # (``key_by(lambda w: w)``), so are the values' texts.
        texts = keys if b.raw is None and all(map(is_, kobjs, vals)) else None
        return Batch(keys, b.ts, b.raw, vals, texts)


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
        for i, k, t, v in zip(_inputs(b), keys, b.times() or repeat(None), b.values()):
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
        return Batch(out_k, out_t if b.ts is not None else None, None, out_v)

    def _on_timer(self, key, timer):
        ctx = self.ctx
        _ctx.set_record_key(key)
        ctx._out = out = []
        t = timer.timestamp if timer.domain == _ctx.TimeDomain.EVENT_TIME else None
        ctx.timestamp = t
        _emitted(self.timer_fn(ctx, timer), ctx)
        n = len(out)
        return Batch([key] * n, None if t is None else [t] * n, None, out)


def _inputs(b):
    """Which input each record came by: 0, or 1 for a two-input operator's second."""
    return b.inputs or repeat(0)


class CoMap(Operator):
    """``first(value)`` or ``second(value)`` by the input a record came by."""

    def __init__(self, first, second):
        self.fs = (first, second)

    def process(self, b):
        fs = self.fs
        return Batch(b.keys, b.ts, None, [fs[i](v) for i, v in zip(_inputs(b), b.values())])


class CoFlatMap(Operator):
    """Any number of outputs per record, by the function of its input."""

    def __init__(self, first, second):
        self.fs = (first, second)

    def process(self, b):
        fs = self.fs
        outs = [list(fs[i](v)) for i, v in zip(_inputs(b), b.values())]
        counts = list(map(len, outs))
        keys = None if b.keys is None else list(chain.from_iterable(map(repeat, b.keys, counts)))
        ts = None if b.ts is None else list(chain.from_iterable(map(repeat, b.ts, counts)))
        return Batch(keys, ts, None, list(chain.from_iterable(outs)))


class CoProcess(Operator):
    """``first(ctx, value)`` or ``second(ctx, value)`` by the input a record came by."""

    def __init__(self, first, second, ctxs=None):
        self.fs = (first, second)
        self.ctxs = ctxs or (_ctx.Context(),) * 2

    def process(self, b):
        fs, ctxs = self.fs, self.ctxs
        out_k, out_t, out_v = [], [], []
        for i, k, t, v in zip(_inputs(b), b.keys or repeat(None), b.times() or repeat(None), b.values()):
            ctx = ctxs[i]
            ctx._out = out = []
            ctx.timestamp = t
            _emitted(fs[i](ctx, v), ctx)
            if out:
                out_v += out
                out_k += [k] * len(out)
                out_t += [t] * len(out)
        return Batch(out_k if b.keys is not None else None,
                     out_t if b.ts is not None else None, None, out_v)


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
        out, raw = [], []
        get, put = _ctx.host_value_get, _ctx.host_value_set
        for k, v in zip(keys, b.values()):
            _ctx.set_record_key(k)
            acc = get(self.STATE)
            nxt = v if acc is None else f(_loads(acc), v)
            enc = encode_value(nxt)
            put(self.STATE, enc)
            out.append(nxt)
            raw.append(enc)
        # The values leave encoded already: the state's bytes are the output's.
        return Batch(keys, b.ts, raw, out)


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
    operators after it (as the Rust SDK does)."""
    out = []
    for i, op in enumerate(ops):
        if op.on_timer is not None:
            b = op.on_timer(key, timer)
            if len(b):
                out.append(encode_batch(run_chain(ops[i + 1:], b)))
    return b"".join(out)
