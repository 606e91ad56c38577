"""The DataStream builder: ``Env``, ``Stream``, ``KeyedStream``, windows and sinks.

Running a job function against an :class:`Env` records two things at once: the job graph
that the planner returns, and the registry of user operators (``wasm(n)`` vertices) that
``operator.open`` selects from. Both come from the same deterministic run, so registry index
``n`` means the same function in the planner and in every operator instance.

This mirrors ``guest-sdk/src/graph.rs`` and ``windows.rs`` call for call: the same program
builds the same vertices (kinds, names, flags), edges and registry indices as in Rust, so
the host treats a Python job exactly like a Rust one. Building never calls host imports;
graphs are plain Python objects here, converted to WIT records by ``_runtime``.
"""

import functools

from . import joins, ops
from .ctx import TimeWindow
from .errors import EddyError
from .ops import encode_value

FORWARD, HASH, REBALANCE, BROADCAST = "forward", "hash", "rebalance", "broadcast"
EVENT_TIME, PROCESSING_TIME = "event-time", "processing-time"
_U32_MAX = 0xFFFFFFFF


# How far Nexmark events' watermarks stay behind their largest event time: the reference
# generator's out-of-orderness (the Rust SDK's `nexmark::OUT_OF_ORDERNESS_MS`).
_NEXMARK_OUT_OF_ORDERNESS_MS = 4000


class Vertex:
    """One operator of the job graph; ``kind`` is a tuple ``(kind-name, fields...)`` or,
    for kinds whose spec later calls amend (timestamps, window), a ``[name, dict]`` list."""

    __slots__ = ("id", "name", "uid", "kind", "parallelism", "slot_sharing_group", "keyed",
                 "per_key_updates")

    def __init__(self, id, name, kind):
        self.id = id
        self.name = name
        self.uid = None
        self.kind = kind
        self.parallelism = None
        self.slot_sharing_group = None
        self.keyed = False
        self.per_key_updates = False


class Edge:
    __slots__ = ("source", "target", "partitioning", "side_output", "input")

    def __init__(self, source, target, partitioning, side_output, input=0):
        self.source = source
        self.target = target
        self.partitioning = partitioning
        self.side_output = side_output
        # 1: the second input of a two-input operator (its records carry flag bit 3).
        self.input = input


class Graph:
    """What a job function built: the graph and the operator registry."""

    def __init__(self, name):
        self.name = name
        self.vertices = []
        self.edges = []
        self.parallelism = None
        self.max_parallelism = None
        self.registry = []
        self.errors = []

    def add_vertex(self, name, kind, input=None):
        return self.add_vertex_from(name, kind, [] if input is None else [input])

    def add_vertex_from(self, name, kind, first, second=()):
        """A vertex fed by ``first`` (its input 0) and ``second`` (input 1: only a two-input
        operator has one; the host marks the records that come by it)."""
        v = Vertex(len(self.vertices), name, kind)
        self.vertices.append(v)
        for n, inputs in enumerate((first, second)):
            for source, partitioning, side_output in inputs:
                self.edges.append(Edge(source, v.id, partitioning, side_output, n))
        return v.id

    def register(self, op):
        """Adds ``op`` to the registry; returns the index ``wasm`` vertices name."""
        self.registry.append(op)
        return len(self.registry) - 1

    def add_operator(self, name, op, input):
        return self.add_operator_from(name, op, [input])

    def add_operator_from(self, name, op, first, second=()):
        return self.add_vertex_from(name, ("wasm", self.register(op)), first, second)

    def place_with(self, src, dst):
        """Gives vertex ``dst`` the parallelism and slot-sharing group of ``src``, so the
        forward edge between them is chained (one task, records in order)."""
        a, b = self.vertices[src], self.vertices[dst]
        b.parallelism = a.parallelism
        b.slot_sharing_group = a.slot_sharing_group


def field_ref(field):
    """The part of a value a built-in aggregate reads: ``None`` the whole value, an int the
    element of a tuple (JSON array), a str the member of an object."""
    if field is None:
        return ("whole",)
    if isinstance(field, bool):
        raise EddyError(f"invalid field {field!r}: use an index, a name or None")
    if isinstance(field, int):
        # A negative index names no element, which the host reports (as in Rust).
        return ("index", field if 0 <= field <= _U32_MAX else _U32_MAX)
    if isinstance(field, str):
        return ("name", field)
    raise EddyError(f"invalid field {field!r}: use an index, a name or None")


class Env:
    """The execution environment a job function builds its pipeline on, like Flink's
    ``StreamExecutionEnvironment``."""

    def __init__(self, name):
        self._g = Graph(name)

    def _source(self, name, kind, parallelism):
        g = self._g
        vid = g.add_vertex(name, kind)
        g.vertices[vid].parallelism = parallelism
        return Stream(g, vid)

    def socket_text_stream(self, host, port):
        """Lines of a text socket, as strings (parallelism 1, unbounded)."""
        return self._source("Socket Source", ("socket-source", str(host), int(port)), 1)

    def read_kafka(self, brokers, topics, start="earliest", bounded=False, group=None,
                   format="text", secret=None):
        """The records of Kafka topics, like Flink's ``KafkaSource``: partitions are
        spread over the source's subtasks and their offsets are checkpointed.

        ``brokers`` is ``"host:port[,host:port...]"``; ``topics`` a name or a list
        (a name starting with ``^`` is a regular expression). ``start`` is
        ``"earliest"``, ``"latest"``, ``"committed"`` (the ``group``'s offsets) or
        ``{"timestamp": ms}``; ``bounded`` stops at the ends the partitions had at
        the start. ``format``: ``"text"`` (values are strings), ``"json"`` (values
        are parsed) or ``"envelope"`` (dicts with topic, partition, offset,
        timestamp, key, value and headers). ``secret`` names credentials the
        cluster keeps. Records carry the Kafka timestamp (``assign_watermarks``)."""
        if isinstance(topics, str):
            topics = [topics]
        if isinstance(start, dict):
            if set(start) != {"timestamp"}:
                raise EddyError(f"read_kafka: start {start!r} is not {{'timestamp': ms}}")
            start = ("timestamp", int(start["timestamp"]))
        elif start in ("earliest", "latest", "committed"):
            start = (start,)
        else:
            raise EddyError(f"read_kafka: start {start!r} is not earliest, latest, committed or {{'timestamp': ms}}")
        if format not in ("text", "json", "envelope"):
            raise EddyError(f"read_kafka: format {format!r} is not text, json or envelope")
        kind = ("kafka-source", str(brokers), [str(t) for t in topics], start, bool(bounded),
                None if group is None else str(group), format, None if secret is None else str(secret))
        return self._source("Kafka Source", kind, None)

    def read_text_file(self, path):
        """Lines of a text file, as strings (bounded; split across subtasks by the host)."""
        return self._source("File Source", ("file-source", str(path)), None)

    def read_json_lines(self, path):
        """The JSON values of a JSON Lines file, one a line, as Python values (bounded;
        split across subtasks by the host, which passes each line on unparsed: a line that
        is not JSON fails the operator that reads it). Blank lines are skipped."""
        return self._source("JSON Lines Source", ("json-lines-source", str(path)), None)

    def read_nexmark_file(self, path):
        """Nexmark events from a JSON Lines file of the shared format (one event object a
        line, as ``nexmark_gen.py`` writes), as :meth:`read_nexmark` gives them: dicts, with
        each event's time (its ``dateTime``, read by the host) and watermarks 4 s behind."""
        return self._source("Nexmark File Source", ("nexmark-file-source", str(path)),
                            None).assign_watermarks(_NEXMARK_OUT_OF_ORDERNESS_MS)

    def from_elements(self, *elements):
        """A fixed collection of values (parallelism 1, bounded): ``from_elements(1, 2, 3)``
        or ``from_elements([1, 2, 3])`` (a single list is the collection; a tuple is one
        value, a JSON array)."""
        if len(elements) == 1 and isinstance(elements[0], list):
            elements = elements[0]
        encoded = []
        for e in elements:
            try:
                encoded.append(encode_value(e))
            except (TypeError, ValueError) as err:
                self._g.errors.append(f"from_elements: {err}")
        return self._source("Elements Source", ("elements-source", encoded), 1)

    def generate(self, n, f):
        """``f(0), f(1), ..., f(n-1)``: a host-side sequence source of ``0..n`` (split across
        subtasks) followed by a chained map applying ``f`` in the guest."""
        return self._sequence(n, None).map(f)

    def generate_at_rate(self, n, per_second, f):
        """Like :meth:`generate`, but at most ``per_second`` records per second in all."""
        return self._sequence(n, per_second).map(f)

    def input(self):
        """The records of the job this entry is a part of: an entry built on ``input`` is
        an operator entry, which a job file (``eddy run job.toml``) splices into a job mixing
        components, possibly written in other languages. It cannot run on its own."""
        return self._source("Input", ("input",), None)

    def read_nexmark(self, events, per_second=None, event_rate=10_000_000):
        """Nexmark events made by the host (dicts of the shared event files' format:
        ``{"event_type", "person", "auction", "bid"}``), split across the source's subtasks,
        with event time and watermarks 4 s behind; ``per_second`` holds the source to a
        rate, ``event_rate`` is events per second of event time."""
        kind = ("nexmark-source", int(events), None if per_second is None else int(per_second),
                int(event_rate))
        return self._source("Nexmark Source", kind, None).assign_watermarks(_NEXMARK_OUT_OF_ORDERNESS_MS)

    def _sequence(self, count, per_second):
        return self._source("Sequence Source", ("sequence-source", int(count), per_second), None)

    def set_parallelism(self, parallelism):
        """Default parallelism of the job's vertices."""
        self._g.parallelism = int(parallelism)
        return self

    def set_max_parallelism(self, max_parallelism):
        """Number of key groups: the upper bound for rescaling keyed state."""
        self._g.max_parallelism = int(max_parallelism)
        return self

    def set_job_name(self, name):
        """The job's name (defaults to the entry name)."""
        self._g.name = str(name)
        return self

    def _finish(self):
        """Validates the graph; forward edges between vertices whose parallelisms are both
        known and differ become rebalance edges, as in Flink."""
        g = self._g
        if g.errors:
            raise EddyError(g.errors[0])
        if not g.vertices:
            raise EddyError(f"job '{g.name}' defines no operators")

        def effective(v):
            return v.parallelism if v.parallelism is not None else g.parallelism

        for e in g.edges:
            if e.partitioning == FORWARD:
                a = effective(g.vertices[e.source])
                b = effective(g.vertices[e.target])
                if a is not None and b is not None and a != b:
                    e.partitioning = REBALANCE
        return g


class _Settable:
    """The settings every builder handle offers for its last vertex."""

    def _vertex(self):
        return self._g.vertices[self._v]

    def name(self, name):
        """Names the last vertex (shown in plans, logs and errors)."""
        self._vertex().name = str(name)
        return self

    def uid(self, uid):
        """Gives the last vertex a stable identity for its state across job versions."""
        self._vertex().uid = str(uid)
        return self

    def set_parallelism(self, parallelism):
        """Overrides the job's parallelism for the last vertex."""
        self._vertex().parallelism = int(parallelism)
        return self

    def slot_sharing_group(self, group):
        """Puts the last vertex into slot-sharing group ``group`` (default: "default")."""
        self._vertex().slot_sharing_group = str(group)
        return self


class DataSink(_Settable):
    """A sink vertex; only its settings can still be changed."""

    def __init__(self, g, v):
        self._g = g
        self._v = v


class Stream(_Settable):
    """A stream of values, each carried as JSON between operators. A stream may feed several
    operators: each call on it starts another branch."""

    def __init__(self, g, v, edge=FORWARD, side_output=False, more=()):
        self._g = g
        self._v = v
        self._edge = edge
        self._side_output = side_output
        # The other streams merged into this one by union: the next operator reads them too.
        self._more = list(more)

    def _input(self):
        return (self._v, self._edge, self._side_output)

    def _inputs(self):
        return [self._input()] + self._more

    def _then(self, name, op):
        return Stream(self._g, self._g.add_operator_from(name, op, self._inputs()))

    def union(self, *others):
        """Merges streams into this one (Flink's ``union``): the next operator reads the
        records of all of them; its event time is the minimum of theirs."""
        more = list(self._more)
        for o in others:
            more += o._inputs()
        return Stream(self._g, self._v, self._edge, self._side_output, more)

    def join(self, other):
        """Joins this stream with ``other`` in windows (Flink's ``join``): pairs of values of
        the same key in the same window; ``.where_key(ka).equal_to(kb).window(w).apply(f)``."""
        return joins.JoinedStreams(self, other)

    def co_group(self, other):
        """Groups this stream with ``other`` in windows (Flink's ``coGroup``): per key and
        window, the values of both; ``....window(w).co_group_apply(f)``."""
        return joins.JoinedStreams(self, other)

    def connect(self, other):
        """Connects this stream with ``other``: the next operator has two inputs, a function
        for each (``map``, ``flat_map``, ``process``), or after ``key_by`` one keyed state
        both share (Flink's ``ConnectedStreams``)."""
        return ConnectedStreams(self, other)

    # Event time.

    def assign_timestamps(self, field, out_of_orderness_ms=0):
        """Event time from field ``field`` of each value (epoch ms), with watermarks
        ``out_of_orderness_ms`` behind the largest timestamp seen (Flink's
        ``forBoundedOutOfOrderness``). Runs in the host, chained to this stream's operator."""
        return self._timestamps(field_ref(field), out_of_orderness_ms)

    def assign_watermarks(self, out_of_orderness_ms=0):
        """Watermarks behind the largest timestamp the records already carry."""
        return self._timestamps(None, out_of_orderness_ms)

    def _timestamps(self, field, out_of_orderness_ms):
        spec = {"field": field, "out_of_orderness_ms": int(out_of_orderness_ms),
                "idle_timeout_ms": None}
        vid = self._g.add_vertex_from("Timestamps", ["timestamps", spec], self._inputs())
        self._g.place_with(self._v, vid)
        return Stream(self._g, vid)

    def with_idleness(self, timeout_ms):
        """Marks the stream idle after ``timeout_ms`` without records, so downstream
        watermarks stop waiting for it. Follows ``assign_timestamps``/``assign_watermarks``."""
        kind = self._vertex().kind
        if kind[0] == "timestamps":
            kind[1]["idle_timeout_ms"] = int(timeout_ms)
        else:
            self._g.errors.append(
                "with_idleness must follow assign_timestamps or assign_watermarks")
        return self

    # Partitioning.

    def rebalance(self):
        """Sends records round-robin to the next operator's subtasks."""
        return self._partitioned(REBALANCE)

    def broadcast(self):
        """Sends every record to every subtask of the next operator."""
        return self._partitioned(BROADCAST)

    def _partitioned(self, p):
        more = [(v, p, side) for v, _, side in self._more]
        return Stream(self._g, self._v, p, self._side_output, more)

    # Sinks.

    def print(self):
        """Prints each value to the task's stdout (strings raw, anything else as JSON)."""
        return DataSink(self._g, self._g.add_vertex_from("Print Sink", ("print-sink",), self._inputs()))

    def discard(self):
        """Counts each value and drops it (a benchmark's sink, as Flink's ``blackhole``)."""
        return DataSink(self._g, self._g.add_vertex_from("Discard Sink", ("discard-sink",), self._inputs()))

    def write_text_file(self, path):
        """Writes each value as a line into part files under directory ``path``."""
        kind = ("file-sink", str(path))
        return DataSink(self._g, self._g.add_vertex_from("File Sink", kind, self._inputs()))

    def write_kafka(self, brokers, topic, guarantee="none", format="text", secret=None):
        """Writes each value into a Kafka topic, like Flink's ``KafkaSink``.

        ``guarantee``: ``"none"`` or ``"at-least-once"`` (each checkpoint waits
        until the brokers acknowledged every record before it). ``format``:
        ``"text"`` (strings as their text, anything else as JSON), ``"json"``, or
        ``"envelope"`` (dicts with ``value`` and optional ``key``, ``partition``
        and ``headers``)."""
        if guarantee not in ("none", "at-least-once"):
            raise EddyError(f"write_kafka: guarantee {guarantee!r} is not none or at-least-once")
        if format not in ("text", "json", "envelope"):
            raise EddyError(f"write_kafka: format {format!r} is not text, json or envelope")
        kind = ("kafka-sink", str(brokers), str(topic), guarantee, format,
                None if secret is None else str(secret))
        return DataSink(self._g, self._g.add_vertex_from("Kafka Sink", kind, self._inputs()))

    # Operators.

    def map(self, f):
        """One output ``f(value)`` per input."""
        return self._then("Map", ops.Map(f))

    def flat_map(self, f):
        """Any number of outputs per input: ``f(value)`` returns an iterable."""
        return self._then("FlatMap", ops.FlatMap(f))

    def filter(self, f):
        """Keeps the values for which ``f(value)`` is true (their bytes pass unchanged)."""
        return self._then("Filter", ops.Filter(f))

    def process(self, f):
        """A general function ``f(ctx, value)``: emits with ``ctx.collect(v)`` (or by
        yielding values), sees ``ctx.timestamp``."""
        return self._then("Process", ops.Process(f))

    def broadcast_state(self):
        """This stream as the broadcast input of :meth:`connect_broadcast`: each of its
        records goes to every subtask of the operator, to update broadcast state."""
        return BroadcastStream(self._g, [(v, BROADCAST, side) for v, _, side in self._inputs()])

    def connect_broadcast(self, rules):
        """Connects this stream with a :class:`BroadcastStream`; ``process(element,
        broadcast)`` on the result takes a function per input (Flink's
        ``BroadcastProcessFunction``)."""
        return BroadcastConnectedStreams(self._g, self._inputs(), rules._inputs, keyed=False)

    def window_all(self, window):
        """Windows over the whole stream, not per key (Flink's ``windowAll``): each window's
        result is computed in one subtask. ``count``, ``sum``, ``min``, ``max`` and
        ``reduce`` over event-time tumbling windows (or sliding ones whose size is a
        multiple of their slide) without allowed lateness are computed in parallel first,
        and only the partial results merged in the one subtask."""
        return AllWindowedStream(self, window)

    def key_by(self, f):
        """Partitions by ``f(value)``: sets each record's key to the key's JSON; the next
        operator is connected by a hash edge so that one subtask sees all of a key."""
        g = self._g
        index = g.register(ops.KeyBy(f))
        # The key selector belongs with its input, as in Flink: chained, per-key order holds.
        # A union has one per merged stream, all running the same registered function.
        vids = []
        for inp in self._inputs():
            vid = g.add_vertex("KeyBy", ("wasm", index), inp)
            g.place_with(inp[0], vid)
            vids.append(vid)
        return KeyedStream(g, vids[0], vids[1:])


class KeyedStream(_Settable):
    """A stream partitioned by key; its operators may use keyed state and timers."""

    def __init__(self, g, v, more=()):
        self._g = g
        self._v = v
        # The key selectors of the other streams of a union.
        self._more = list(more)

    def _hashed(self):
        return [(v, HASH, False) for v in [self._v] + self._more]

    def connect(self, other):
        """Connects two keyed streams: one keyed operator whose state and timers both
        inputs share (Flink's ``KeyedCoProcessFunction``)."""
        return KeyedConnectedStreams(self._g, self._hashed(), other._hashed())

    def interval_join(self, other):
        """Joins this stream with ``other`` (keyed alike) on event time (Flink's
        ``intervalJoin``): a value at ``ta`` pairs with every value of the same key at ``tb``
        where ``ta + lower <= tb <= ta + upper`` (``between``). Values behind the watermark
        when they arrive are late and pair with nothing."""
        return joins.IntervalJoin(self.connect(other))

    def connect_broadcast(self, rules):
        """Connects this keyed stream with a :class:`BroadcastStream`: the operator has
        keyed state and timers for this stream's records and broadcast state for both
        (Flink's ``KeyedBroadcastProcessFunction``)."""
        return BroadcastConnectedStreams(self._g, self._hashed(), rules._inputs, keyed=True)

    def window(self, window):
        """Groups each key's records into windows (a host operator); pick the window
        function on the returned :class:`WindowedStream`."""
        return WindowedStream(self._g, self._hashed(), window)

    def _aggregate(self, name, kind, field):
        kind = ("aggregate", kind, field_ref(field))
        return Stream(self._g, self._g.add_vertex_from(name, kind, self._hashed()))

    def sum(self, field=None):
        """Running sum of ``field`` per key (built into the host): emits the key's first
        record with the field replaced by the sum. ``None``: the value is the number."""
        return self._aggregate("Sum", "sum", field)

    def min(self, field=None):
        """Running minimum of ``field`` per key (built into the host)."""
        return self._aggregate("Min", "min", field)

    def max(self, field=None):
        """Running maximum of ``field`` per key (built into the host)."""
        return self._aggregate("Max", "max", field)

    def count(self):
        """Running count per key (built into the host): emits ``[key, n]``."""
        return self._aggregate("Count", "count", None)

    def _keyed_operator(self, name, op, per_key_updates):
        vid = self._g.add_operator_from(name, op, self._hashed())
        v = self._g.vertices[vid]
        v.keyed = True
        v.per_key_updates = per_key_updates
        return Stream(self._g, vid)

    def process(self, f, on_timer=None):
        """A keyed function ``f(ctx, value)``: ``ctx.key``, keyed state, timers and
        ``ctx.collect``. ``on_timer(ctx, timer)``, if given, is called when a timer the key
        registered fires, with that key current (Flink's ``KeyedProcessFunction``)."""
        return self._keyed_operator("Process", ops.KeyedProcess(f, on_timer), False)

    def reduce(self, f):
        """Folds each key's values with ``f(acc, value)`` (state ``__reduce``) and emits the
        running result for every input, as Flink's ``reduce`` does."""
        return self._keyed_operator("Reduce", ops.Reduce(f), True)


class ConnectedStreams:
    """Two streams, possibly of different kinds of values, feeding one operator."""

    def __init__(self, first, second):
        self._first = first
        self._second = second

    def _then(self, name, op):
        g = self._first._g
        return Stream(g, g.add_operator_from(name, op, self._first._inputs(), self._second._inputs()))

    def map(self, first, second):
        """One output per record: ``first(value)`` for the first stream's, ``second(value)``
        for the other's (Flink's ``CoMapFunction``)."""
        return self._then("CoMap", ops.CoMap(first, second))

    def flat_map(self, first, second):
        """Any number of outputs per record: each function returns an iterable."""
        return self._then("CoFlatMap", ops.CoFlatMap(first, second))

    def process(self, first, second):
        """``first(ctx, value)`` / ``second(ctx, value)``: emit with ``ctx.collect``."""
        return self._then("CoProcess", ops.CoProcess(first, second))

    def key_by(self, first_key, second_key):
        """Partitions both inputs by keys of one kind: records of one key of both meet in
        one subtask, with one keyed state."""
        return self._first.key_by(first_key).connect(self._second.key_by(second_key))


class KeyedConnectedStreams:
    """Two keyed streams feeding one keyed operator: state and timers shared by both."""

    def __init__(self, g, first, second):
        self._g = g
        self._first = first
        self._second = second

    def process(self, first, second, on_timer=None):
        """``first(ctx, value)`` for the first stream's records, ``second(ctx, value)`` for
        the other's, with the record's key current for keyed state (``ctx.key``,
        ``ctx.value_state(...)``, shared by both); ``on_timer(ctx, timer)`` when a timer
        the key registered fires."""
        return self._keyed_operator("CoProcess", ops.KeyedCoProcess(first, second, on_timer))

    def _keyed_operator(self, name, op):
        vid = self._g.add_operator_from(name, op, self._first, self._second)
        self._g.vertices[vid].keyed = True
        return Stream(self._g, vid)


class BroadcastStream:
    """A stream whose records reach every subtask of the operator it is connected to."""

    def __init__(self, g, inputs):
        self._g = g
        self._inputs = inputs


class BroadcastConnectedStreams:
    """A stream, keyed or not, connected with a broadcast stream.

    The broadcast input's function ``broadcast(ctx, value)`` runs in every subtask and may
    change broadcast state (``ctx.broadcast_state(name)``: a map of JSON keys to JSON
    values); the other input's ``element(ctx, value)`` may only read it, so that every
    subtask's copy stays the same. The host keeps each subtask's copy, saves it in
    snapshots and gives every subtask of a rescaled job one copy."""

    def __init__(self, g, first, second, keyed):
        self._g = g
        self._first = first
        self._second = second
        self._keyed = keyed

    def process(self, element, broadcast, on_timer=None):
        """``element(ctx, value)`` for the stream's records (with ``ctx.key``, keyed state
        and timers on a keyed stream), ``broadcast(ctx, value)`` for the broadcast
        stream's; ``on_timer(ctx, timer)`` (keyed only) when a timer of a key fires."""
        if self._keyed:
            op = ops.KeyedBroadcastProcess(element, broadcast, on_timer)
        elif on_timer is not None:
            raise EddyError("connect_broadcast: timers need a keyed stream (key_by before it)")
        else:
            op = ops.BroadcastProcess(element, broadcast)
        vid = self._g.add_operator_from("BroadcastProcess", op, self._first, self._second)
        self._g.vertices[vid].keyed = self._keyed
        return Stream(self._g, vid)


class Window:
    """Which windows a record belongs to, and on which clock they fire."""

    def __init__(self, assigner, time):
        self.assigner = assigner
        self.time = time

    @staticmethod
    def tumbling_event_time(size_ms):
        """Fixed windows of ``size_ms``, aligned to the epoch, on record timestamps."""
        return Window(("tumbling", int(size_ms)), EVENT_TIME)

    @staticmethod
    def sliding_event_time(size_ms, slide_ms):
        """Windows of ``size_ms`` starting every ``slide_ms``, on record timestamps."""
        return Window(("sliding", int(size_ms), int(slide_ms)), EVENT_TIME)

    @staticmethod
    def session_event_time(gap_ms):
        """Per key, records less than ``gap_ms`` apart share a window, on record timestamps."""
        return Window(("session", int(gap_ms)), EVENT_TIME)

    @staticmethod
    def tumbling_processing_time(size_ms):
        """Fixed windows of ``size_ms`` on the wall clock of the window's subtask."""
        return Window(("tumbling", int(size_ms)), PROCESSING_TIME)

    @staticmethod
    def sliding_processing_time(size_ms, slide_ms):
        """Sliding windows on the wall clock."""
        return Window(("sliding", int(size_ms), int(slide_ms)), PROCESSING_TIME)

    @staticmethod
    def session_processing_time(gap_ms):
        """Sessions with gap ``gap_ms``, on the wall clock."""
        return Window(("session", int(gap_ms)), PROCESSING_TIME)


class WindowedStream(_Settable):
    """A keyed stream grouped into windows; choose what each window computes. Results carry
    the key and the timestamp ``end - 1``."""

    def __init__(self, g, keyed, window):
        spec = {"assigner": window.assigner, "time": window.time, "allowed_lateness_ms": 0,
                "function": ("collect",)}
        self._g = g
        self._v = g.add_vertex_from("Window", ["window", spec], keyed)

    def _spec(self):
        return self._vertex().kind[1]

    def allowed_lateness(self, lateness_ms):
        """Records up to ``lateness_ms`` behind the watermark still update their windows
        (each fires again); later ones are dropped or go to :meth:`late_data`."""
        self._spec()["allowed_lateness_ms"] = int(lateness_ms)
        return self

    def late_data(self):
        """The records too late for any of their windows (Flink's ``sideOutputLateData``)."""
        return Stream(self._g, self._v, FORWARD, True)

    def _built_in(self, name, kind, field):
        self._spec()["function"] = ("aggregate", kind, field_ref(field))
        self._vertex().name = name
        return Stream(self._g, self._v)

    def count(self):
        """Number of records per key and window (built into the host): ``[key, n]``."""
        return self._built_in("Window Count", "count", None)

    def sum(self, field=None):
        """Sum of ``field`` per key and window (built into the host)."""
        return self._built_in("Window Sum", "sum", field)

    def min(self, field=None):
        """Minimum of ``field`` per key and window (built into the host)."""
        return self._built_in("Window Min", "min", field)

    def max(self, field=None):
        """Maximum of ``field`` per key and window (built into the host)."""
        return self._built_in("Window Max", "max", field)

    def _then(self, name, f):
        """Adds the Wasm vertex after the ``collect`` window: a process function that
        unpacks each fired window's envelope ``{"key","start","end","values"}`` and calls
        ``f(ctx, key, window, values)``."""
        def run(ctx, e):
            if not isinstance(e, dict) or "values" not in e:
                raise EddyError(f"a window function received {type(e).__name__}, "
                                "not a window's envelope")
            return f(ctx, e["key"], TimeWindow(e["start"], e["end"]), e["values"])
        vid = self._g.add_operator(name, ops.Process(run), (self._v, FORWARD, False))
        self._g.place_with(self._v, vid)
        return Stream(self._g, vid)

    def reduce(self, f):
        """Folds each window's values with ``f(a, b)`` and emits the result."""
        def run(ctx, key, window, values):
            if values:
                ctx.collect(functools.reduce(f, values))
        return self._then("Window Reduce", run)

    def aggregate(self, create, add, result=lambda acc: acc):
        """Flink's ``AggregateFunction``: an accumulator from ``create()``, each value folded
        in by ``add(acc, value)``, the output made by ``result(acc)``."""
        def run(ctx, key, window, values):
            acc = create()
            for v in values:
                acc = add(acc, v)
            ctx.collect(result(acc))
        return self._then("Window Aggregate", run)

    def process(self, f):
        """A full window function ``f(ctx, key, window, values)`` (``window.start``,
        ``window.end``); emits with ``ctx.collect`` (Flink's ``ProcessWindowFunction``)."""
        return self._then("Window Process", f)


# How many keys a pre-aggregating AllWindowedStream spreads records over (as in Rust).
_SPREAD = 64


class AllWindowedStream:
    """A stream grouped into windows over all its records; choose what each window computes.
    Results carry the timestamp ``end - 1``. Mirrors ``AllWindowedStream`` of the Rust SDK
    (guest-sdk/src/windows.rs), graph for graph."""

    def __init__(self, stream, window):
        self._stream = stream
        self._window = window
        self._lateness = 0

    def allowed_lateness(self, lateness_ms):
        """Records up to ``lateness_ms`` behind the watermark still update their windows
        (each fires again). A window with lateness is not pre-aggregated."""
        self._lateness = int(lateness_ms)
        return self

    def _merging_window(self):
        """The window that merges partial results, if they can be merged: each partial
        carries its window's ``end - 1``, which one tumbling window of the slide gathers."""
        a = self._window.assigner
        if self._lateness or self._window.time != EVENT_TIME:
            return None
        if a[0] == "tumbling":
            return Window.tumbling_event_time(a[1])
        if a[0] == "sliding" and a[2] > 0 and a[1] % a[2] == 0:
            return Window.tumbling_event_time(a[2])
        return None

    def _partial(self):
        nxt = [0]

        def spread(_):
            key = nxt[0]
            nxt[0] = (key + 1) % _SPREAD
            return key
        return self._stream.key_by(spread).window(self._window)

    @staticmethod
    def _single(stream, window, lateness):
        return stream.key_by(lambda _: None).window(window).set_parallelism(1).allowed_lateness(lateness)

    def _built_in(self, apply, merge, apply_all):
        merging = self._merging_window()
        if merging is not None:
            return merge(self._single(apply(self._partial()), merging, 0))
        return apply_all(self._single(self._stream, self._window, self._lateness))

    def count(self):
        """Number of records per window (built into the host)."""
        counts = self._built_in(lambda w: w.count().map(_second), lambda w: w.sum(None),
                                lambda w: w.count().map(_second))
        return counts.set_parallelism(1)

    def sum(self, field=None):
        """Sum of ``field`` per window (built into the host)."""
        return self._built_in(*(lambda w: w.sum(field),) * 3)

    def min(self, field=None):
        """Minimum of ``field`` per window (built into the host)."""
        return self._built_in(*(lambda w: w.min(field),) * 3)

    def max(self, field=None):
        """Maximum of ``field`` per window (built into the host)."""
        return self._built_in(*(lambda w: w.max(field),) * 3)

    def reduce(self, f):
        """Folds each window's values with ``f(a, b)``. Partials are computed in parallel and
        merged in no particular order, so ``f`` must be associative and commutative."""
        return self._built_in(*(lambda w: w.reduce(f),) * 3)

    def aggregate(self, create, add, result=lambda acc: acc):
        """Flink's ``AggregateFunction`` over each window's values (in the one subtask)."""
        return self._single(self._stream, self._window, self._lateness).aggregate(create, add, result)

    def process(self, f):
        """A full window function ``f(ctx, window, values)``, in the one subtask (Flink's
        ``ProcessAllWindowFunction``)."""
        return self._single(self._stream, self._window, self._lateness).process(
            lambda ctx, key, window, values: f(ctx, window, values))


def _second(pair):
    return pair[1]
