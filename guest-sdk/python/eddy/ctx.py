"""What user functions see at run time: contexts to emit records, keyed state and timers
(kept by the host), and the host's log and counters. Mirrors ``guest-sdk/src/ctx.rs``.

The host's state functions apply to a "current key". Setting it costs a boundary crossing,
so, as in Rust, it is set lazily: only when user code touches state or timers and the
record's key differs from the one last set.
"""

import enum
import json
import time
from collections import namedtuple
from datetime import timedelta

from .errors import EddyError

try:  # Only inside a component; graphs can be built natively without it.
    from componentize_py_types import Err as _Err
    from wit_world.imports import host as _host
    from wit_world.imports import types as _types
except ImportError:  # pragma: no cover - native use (tests, tooling)
    _host = _types = _Err = None

# serde_json's compact form: no spaces, non-ASCII as UTF-8. ``ops`` encodes with it too.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_dumps = _ENCODER.encode
_loads = json.loads


def encode_value(v):
    """The JSON bytes of one value (tuples become arrays, as Rust tuples do)."""
    return _dumps(v).encode()


class Level(enum.Enum):
    """Severity of a log line."""
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


class TimeDomain(enum.Enum):
    """Which clock a timer or window follows."""
    EVENT_TIME = 0
    PROCESSING_TIME = 1


Timer = namedtuple("Timer", "timestamp domain")
Timer.__doc__ = "A timer that fired: its time (ms) and its TimeDomain."
TimeWindow = namedtuple("TimeWindow", "start end")
TimeWindow.__doc__ = "The bounds of a fired window, [start, end) in ms."


def _require_host():
    if _host is None:
        raise EddyError("the host is only available inside an Eddy component")
    return _host


def log(level, message):
    """Writes a line into the task's log; ``level`` a :class:`Level` or its name."""
    if isinstance(level, str):
        level = Level[level.upper()]
    _require_host().log(_types.Level(level.value), str(message))


def info(message):
    """:func:`log` at info level."""
    log(Level.INFO, message)


# Counter deltas of the current export call, summed by name and handed to the host when the
# call ends (flush_counters): a call into the host costs a microsecond or more from Python,
# and operators often count every record. The host shows counters once a second anyway.
_pending_counters = {}
_U64_MAX = (1 << 64) - 1


def counter(name, delta=1):
    """Adds ``delta`` (a non-negative integer) to this subtask's counter ``name``, shown in
    the job's metrics."""
    _require_host()
    d = int(delta)
    if d < 0:
        raise EddyError(f"counter '{name}': delta {delta} is negative")
    key = str(name)
    _pending_counters[key] = min(_pending_counters.get(key, 0) + d, _U64_MAX)


def flush_counters():
    """Hands the counters' deltas of this export call to the host: called as each call ends."""
    if _pending_counters:
        host = _require_host()
        for name, delta in _pending_counters.items():
            host.counter_add(name, delta)
        _pending_counters.clear()


# --- The current key ---------------------------------------------------------------------

_record_key = None  # the key (JSON bytes) of the record being processed
_host_key = None  # the key last given to the host in this export call


def set_record_key(key):
    global _record_key
    _record_key = key


def reset_host_key():
    """The host owns its current key between export calls: forget ours."""
    global _host_key, _record_key
    _host_key = None
    _record_key = None


def set_host_key(key):
    global _host_key
    _host_key = key


def _ensure_host_key():
    global _host_key
    if _record_key is None:
        raise EddyError("keyed state is only available in a keyed operator (after key_by)")
    if _host_key != _record_key:
        try:
            _require_host().set_current_key(_record_key)
        except _Err as e:
            raise EddyError(e.value) from None
        _host_key = _record_key


def host_value_get(state):
    _ensure_host_key()
    return _host.value_get(state)


def host_value_set(state, value):
    _ensure_host_key()
    _host.value_set(state, value)


def _ttl_ms(ttl):
    if isinstance(ttl, timedelta):
        return int(ttl.total_seconds() * 1000)
    return None if ttl is None else int(ttl)


def _decode(state, b):
    try:
        return _loads(b)
    except ValueError as e:
        raise EddyError(f"state '{state}': {e}") from None


class _State:
    """What the state handles share: the state's name, and :meth:`with_ttl`."""

    def __init__(self, name):
        self.name = name

    def with_ttl(self, ttl):
        """Lets the state expire ``ttl`` (ms, or a timedelta) after it was last written: a
        value after it was last set, a whole list after its last add, each map entry after
        it was last put."""
        _require_host().state_ttl(self.name, _ttl_ms(ttl))
        return self


class ValueState(_State):
    """One JSON value per key, kept by the host. Handles are cheap; the key they apply to is
    that of the record (or timer) being processed."""

    def get(self, default=None):
        """The value, or ``default`` if never set (or cleared, or expired)."""
        _ensure_host_key()
        b = _host.value_get(self.name)
        return default if b is None else _decode(self.name, b)

    def set(self, value):
        """Replaces the value."""
        _ensure_host_key()
        _host.value_set(self.name, _dumps(value).encode())

    def clear(self):
        """Removes the value."""
        _ensure_host_key()
        _host.value_clear(self.name)


class ListState(_State):
    """An append-only list of JSON values per key, kept by the host."""

    def get(self):
        """All elements, oldest first."""
        _ensure_host_key()
        return [_decode(self.name, b) for b in _host.list_get(self.name)]

    def add(self, value):
        """Appends an element."""
        _ensure_host_key()
        _host.list_add(self.name, _dumps(value).encode())

    def clear(self):
        """Removes all elements."""
        _ensure_host_key()
        _host.list_clear(self.name)


class _MapView:
    """What a map state offers on top of its ``get`` and ``entries``."""

    def keys(self):
        return [k for k, _ in self.entries()]

    def values(self):
        return [v for _, v in self.entries()]

    def __contains__(self, key):
        return self.get(key, _MISSING) is not _MISSING


class MapState(_MapView, _State):
    """A map of JSON keys to JSON values per key, kept by the host."""

    def get(self, key, default=None):
        """The value under ``key``, or ``default``."""
        _ensure_host_key()
        b = _host.map_get(self.name, _dumps(key).encode())
        return default if b is None else _decode(self.name, b)

    def put(self, key, value):
        """Sets the value under ``key``."""
        _ensure_host_key()
        _host.map_put(self.name, _dumps(key).encode(), _dumps(value).encode())

    def remove(self, key):
        """Removes ``key``."""
        _ensure_host_key()
        _host.map_remove(self.name, _dumps(key).encode())

    def entries(self):
        """All ``(key, value)`` pairs, in the host's order."""
        _ensure_host_key()
        return [(_decode(self.name, k), _decode(self.name, v))
                for k, v in _host.map_entries(self.name)]


_MISSING = object()


class ReadOnlyBroadcastState(_MapView):
    """A broadcast map (JSON keys to JSON values) tied to no key, as the non-broadcast
    input's function sees it: readable only, so every subtask's copy stays the same."""

    def __init__(self, name):
        self.name = name

    def get(self, key, default=None):
        """The value under ``key``, or ``default``."""
        b = _require_host().broadcast_get(self.name, _dumps(key).encode())
        return default if b is None else _decode(self.name, b)

    def entries(self):
        """All ``(key, value)`` pairs, in the order of the keys' JSON bytes."""
        return [(_decode(self.name, k), _decode(self.name, v))
                for k, v in _require_host().broadcast_entries(self.name)]


class BroadcastState(ReadOnlyBroadcastState):
    """A broadcast map as the broadcast input's function sees it: it may change it."""

    def put(self, key, value):
        """Sets the value under ``key``."""
        _require_host().broadcast_put(self.name, _dumps(key).encode(), _dumps(value).encode())

    def remove(self, key):
        """Removes ``key``."""
        _require_host().broadcast_remove(self.name, _dumps(key).encode())


class Context:
    """The context of a ``process`` function: ``collect`` emits (after the function
    returns, with the input record's key and timestamp), ``timestamp`` is the record's
    event time or None."""

    def __init__(self):
        self._out = []
        self.timestamp = None

    def collect(self, value):
        """Emits ``value`` downstream."""
        self._out.append(value)

    def log(self, level, message):
        log(level, message)

    def info(self, message):
        info(message)

    def counter(self, name, delta=1):
        counter(name, delta)


def _wit_domain(domain):
    return _types.TimeDomain(domain.value)


class KeyedContext(Context):
    """The context of a keyed ``process`` function: a :class:`Context` plus the record's
    key, state scoped to that key, and timers."""

    @property
    def key(self):
        """The key of the record (or timer) being processed, decoded from its JSON."""
        return _loads(_record_key)

    def _timer(self, f, domain, timestamp):
        _ensure_host_key()
        f(_wit_domain(domain), int(timestamp))

    def register_event_time_timer(self, timestamp):
        """Calls ``on_timer`` once the watermark reaches ``timestamp`` (ms). One timer per
        key and timestamp; timers are checkpointed with the key's state."""
        self._timer(_require_host().register_timer, TimeDomain.EVENT_TIME, timestamp)

    def register_processing_time_timer(self, timestamp):
        """Calls ``on_timer`` once the wall clock reaches ``timestamp`` (ms since epoch)."""
        self._timer(_require_host().register_timer, TimeDomain.PROCESSING_TIME, timestamp)

    def delete_event_time_timer(self, timestamp):
        """Deletes an event-time timer of the current key."""
        self._timer(_require_host().delete_timer, TimeDomain.EVENT_TIME, timestamp)

    def delete_processing_time_timer(self, timestamp):
        """Deletes a processing-time timer of the current key."""
        self._timer(_require_host().delete_timer, TimeDomain.PROCESSING_TIME, timestamp)

    def current_watermark(self):
        """The subtask's current watermark (the smallest i64 before the first one)."""
        return _require_host().current_watermark()

    def current_processing_time(self):
        """The wall clock, in ms since the Unix epoch."""
        return int(time.time() * 1000)

    def value_state(self, name):
        """Value state ``name`` of the current key."""
        return ValueState(name)

    def list_state(self, name):
        """List state ``name`` of the current key."""
        return ListState(name)

    def map_state(self, name):
        """Map state ``name`` of the current key."""
        return MapState(name)


class BroadcastContext(Context):
    """The context of the broadcast input's function: a :class:`Context` whose broadcast
    state may be changed (it runs in every subtask, for every broadcast record)."""

    def broadcast_state(self, name):
        """Broadcast map state ``name``."""
        return BroadcastState(name)


class ReadOnlyBroadcastContext(Context):
    """The context of the other input's function: broadcast state to read."""

    def broadcast_state(self, name):
        """Broadcast map state ``name``, to read."""
        return ReadOnlyBroadcastState(name)


class KeyedReadOnlyBroadcastContext(KeyedContext):
    """The context of a keyed input's function (and its timers) beside a broadcast input:
    keyed state and timers of the record's key, broadcast state to read."""

    def broadcast_state(self, name):
        """Broadcast map state ``name``, to read."""
        return ReadOnlyBroadcastState(name)
