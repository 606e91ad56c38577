"""Joins of two streams, as Flink's DataStream API has them; mirrors
``guest-sdk/src/joins.rs``, graph for graph.

- **Window joins** (``a.join(b).where_key(ka).equal_to(kb).window(w).apply(f)``) and
  **co-groups** (``.co_group_apply(f)``): both streams, their values tagged with their side,
  are merged and keyed alike; the host's window operator gathers each key's window of both,
  and a function chained after it pairs them. Any window and allowed lateness work as for
  one stream, since it is one stream.
- **Interval joins** (``a.key_by(ka).interval_join(b.key_by(kb)).between(lo, hi).process(f)``):
  a keyed two-input operator that keeps each side's values in keyed map state by time, pairs
  a new value with the other side's values in its interval, and drops values once the
  watermark says nothing can pair with them any more.
"""

from . import ctx as _ctx
from .errors import EddyError
from .ops import Batch, Operator, _emitted, _inputs, _need_keys

# The tags of a window join's values, as serde writes the Rust SDK's `Side` enum.
_FIRST, _SECOND = "First", "Second"


def _sides(values):
    """Splits a window's values into the first stream's and the second's, in arrival order."""
    first = [v[_FIRST] for v in values if _FIRST in v]
    second = [v[_SECOND] for v in values if _SECOND in v]
    return first, second


class JoinedStreams:
    """Two streams to join in windows; name their keys with ``where_key`` and ``equal_to``."""

    def __init__(self, first, second):
        self._first = first
        self._second = second
        self._first_key = None

    def where_key(self, first_key):
        """The key of the first stream's values."""
        self._first_key = first_key
        return self

    def equal_to(self, second_key):
        """The key of the second stream's values, equal to the first's for values that join."""
        if self._first_key is None:
            raise EddyError("join: equal_to needs where_key first")
        first_key = self._first_key
        first = self._first.map(lambda a: {_FIRST: a}).name("Join: first side")
        second = self._second.map(lambda b: {_SECOND: b}).name("Join: second side")

        def key(v):
            return first_key(v[_FIRST]) if _FIRST in v else second_key(v[_SECOND])
        return _JoinedKeys(first.union(second).key_by(key))


class _JoinedKeys:
    def __init__(self, keyed):
        self._keyed = keyed

    def window(self, window):
        """The windows values meet in."""
        return JoinedWindows(self._keyed.window(window))


class JoinedWindows:
    """A window join with its windows: ``apply`` pairs values, ``co_group_apply`` sees both lists."""

    def __init__(self, windows):
        self._windows = windows

    def allowed_lateness(self, lateness_ms):
        """Values up to ``lateness_ms`` behind the watermark still join (their window fires again)."""
        self._windows.allowed_lateness(lateness_ms)
        return self

    def apply(self, f):
        """``f(a, b)`` for every pair of a first-stream and a second-stream value of one key
        in one window (Flink's ``JoinFunction``); results carry the window's last millisecond."""
        def run(ctx, key, window, values):
            first, second = _sides(values)
            for a in first:
                for b in second:
                    ctx.collect(f(a, b))
        return self._windows.process(run).name("Window Join")

    def co_group_apply(self, f):
        """``f(ctx, key, window, firsts, seconds)`` once per key and window that holds values
        of either stream (Flink's ``CoGroupFunction``)."""
        def run(ctx, key, window, values):
            first, second = _sides(values)
            return f(ctx, key, window, first, second)
        return self._windows.process(run).name("Window CoGroup")


class IntervalJoin:
    """Two keyed streams joined on intervals of event time (see ``KeyedStream.interval_join``)."""

    def __init__(self, connected):
        self._connected = connected
        self._bounds = (0, 0)

    def between(self, lower_ms, upper_ms):
        """The interval, in ms relative to the first stream's value's time (inclusive at
        both ends; ``lower <= upper``, either may be negative)."""
        if lower_ms > upper_ms:
            raise EddyError(f"interval join: between({lower_ms}, {upper_ms}): the lower bound is above the upper")
        self._bounds = (int(lower_ms), int(upper_ms))
        return self

    def process(self, f):
        """``f(ctx, a, b)`` for every pair (Flink's ``ProcessJoinFunction``); what it collects
        carries the later of the two times."""
        return self._connected._keyed_operator("Interval Join", IntervalJoinOp(*self._bounds, f))


class IntervalJoinOp(Operator):
    """Each side's values in keyed map state, in buckets of time as wide as the interval, so
    that a value's partners lie in at most two buckets of the other side (as in Rust). A
    bucket goes, by one timer, once the watermark says none of its values can pair any more."""

    STATES = ("__interval_join_first", "__interval_join_second")

    def __init__(self, lower, upper, f):
        self.lower, self.upper, self.f = lower, upper, f
        self.width = max(1, upper - lower + 1)
        self.ctx = _ctx.KeyedContext()
        self.on_timer = self._on_timer

    def _within(self, state, lo, hi):
        """``[time, value]`` of ``state`` with times in ``[lo, hi]`` (one or two buckets)."""
        w = self.width
        return [tv for b in range(lo // w, hi // w + 1) for tv in state.get(b, ()) if lo <= tv[0] <= hi]

    def _pairs(self, input, t, v):
        """The pairs ``(a, b, later time)`` value ``v`` at ``t`` of ``input`` makes."""
        lo, hi = self.lower, self.upper
        other = self.ctx.map_state(self.STATES[1 - input])
        if input == 0:
            return [(v, o, max(t, to)) for to, o in self._within(other, t + lo, t + hi)]
        return [(o, v, max(t, to)) for to, o in self._within(other, t - hi, t - lo)]

    def process(self, b):
        keys = _need_keys(b)
        ts = b.ts
        if ts is None or None in ts:
            raise EddyError("interval join needs event time: assign timestamps at the sources")
        ctx, w = self.ctx, self.width
        out_k, out_t, out_v = [], [], []
        for i, k, t, v in zip(_inputs(b), keys, ts, b.vals):
            _ctx.set_record_key(k)
            if t < ctx.current_watermark():
                continue  # late: nothing pairs with it
            pairs = self._pairs(i, t, v)
            mine = ctx.map_state(self.STATES[i])
            mine.put(t // w, mine.get(t // w, []) + [[t, v]])
            after = self.upper if i == 0 else -self.lower
            ctx.register_event_time_timer((t // w + 1) * w - 1 + after)
            for a, bv, at in pairs:
                ctx._out = out = []
                ctx.timestamp = at
                _emitted(self.f(ctx, a, bv), ctx)
                out_v += out
                out_k += [k] * len(out)
                out_t += [at] * len(out)
        return Batch(out_k, out_t, out_v)

    def _on_timer(self, key, timer):
        """The watermark reached the timer: the bucket of either side whose values could pair
        with nothing after it goes (found from the time, without a scan)."""
        _ctx.set_record_key(key)
        for state, after in zip(self.STATES, (self.upper, -self.lower)):
            nxt = timer.timestamp - after + 1
            if nxt % self.width == 0:
                self.ctx.map_state(state).remove(nxt // self.width - 1)
        return Batch([], None, [])
