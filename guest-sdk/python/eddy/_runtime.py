"""The component's exports: the planner and the operator instance (``wit/eddy.wit``).

``build.sh`` generates the app module that imports the job module (registering its
entries) and then this one, whose ``Planner`` and ``Operator`` classes componentize-py
exports. Everything here runs at build time up to the calls, so a component starts with
the SDK and the job already imported.

Any exception from job code becomes the call's error string -- one line naming the
exception and where in the job it was raised -- which fails the task cleanly; the host
adds the operator's name.
"""

import eddy
from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types as T

from . import ctx as _ctx
from . import ops
from .errors import describe

_KIND = {"sum": T.AggregateKind.SUM, "min": T.AggregateKind.MIN,
         "max": T.AggregateKind.MAX, "count": T.AggregateKind.COUNT}
_PARTITIONING = {"forward": T.Partitioning.FORWARD, "hash": T.Partitioning.HASH,
                 "rebalance": T.Partitioning.REBALANCE, "broadcast": T.Partitioning.BROADCAST}
_TIME = {"event-time": T.TimeDomain.EVENT_TIME, "processing-time": T.TimeDomain.PROCESSING_TIME}
_KAFKA_FORMAT = {"text": T.KafkaFormat.TEXT, "json": T.KafkaFormat.JSON,
                 "envelope": T.KafkaFormat.ENVELOPE}
_GUARANTEE = {"none": T.DeliveryGuarantee.NONE, "at-least-once": T.DeliveryGuarantee.AT_LEAST_ONCE}


def _kafka_start(start):
    if start[0] == "timestamp":
        return T.KafkaStart_Timestamp(start[1])
    return {"earliest": T.KafkaStart_Earliest, "latest": T.KafkaStart_Latest,
            "committed": T.KafkaStart_Committed}[start[0]]()


def _field(f):
    if f[0] == "whole":
        return T.FieldRef_Whole()
    if f[0] == "index":
        return T.FieldRef_Index(f[1])
    return T.FieldRef_Name(f[1])


def _aggregate(kind, field):
    return T.Aggregate(_KIND[kind], _field(field))


def _kind(kind):
    k = kind[0]
    if k == "wasm":
        return T.VertexKind_Wasm(kind[1])
    if k == "file-source":
        return T.VertexKind_FileSource(kind[1])
    if k == "json-lines-source":
        return T.VertexKind_JsonLinesSource(kind[1])
    if k == "nexmark-file-source":
        return T.VertexKind_NexmarkFileSource(kind[1])
    if k == "socket-source":
        return T.VertexKind_SocketSource(T.SocketSource(kind[1], kind[2]))
    if k == "elements-source":
        return T.VertexKind_ElementsSource(kind[1])
    if k == "sequence-source":
        return T.VertexKind_SequenceSource(T.Sequence(kind[1], kind[2]))
    if k == "kafka-source":
        _, brokers, topics, start, bounded, group, fmt, secret = kind
        return T.VertexKind_KafkaSource(T.KafkaSource(
            brokers, topics, _kafka_start(start), bounded, group, _KAFKA_FORMAT[fmt], secret))
    if k == "kafka-sink":
        _, brokers, topic, guarantee, fmt, secret = kind
        return T.VertexKind_KafkaSink(T.KafkaSink(
            brokers, topic, _GUARANTEE[guarantee], _KAFKA_FORMAT[fmt], secret))
    if k == "nexmark-source":
        return T.VertexKind_NexmarkSource(T.NexmarkSource(kind[1], kind[2], kind[3]))
    if k == "discard-sink":
        return T.VertexKind_DiscardSink()
    if k == "input":
        return T.VertexKind_Input()
    if k == "aggregate":
        return T.VertexKind_Aggregate(_aggregate(kind[1], kind[2]))
    if k == "print-sink":
        return T.VertexKind_PrintSink()
    if k == "file-sink":
        return T.VertexKind_FileSink(kind[1])
    if k == "timestamps":
        s = kind[1]
        field = None if s["field"] is None else _field(s["field"])
        return T.VertexKind_Timestamps(
            T.TimestampSpec(field, s["out_of_orderness_ms"], s["idle_timeout_ms"]))
    if k == "window":
        s = kind[1]
        a = s["assigner"]
        if a[0] == "tumbling":
            assigner = T.WindowAssigner_Tumbling(a[1])
        elif a[0] == "sliding":
            assigner = T.WindowAssigner_Sliding(T.SlidingWindow(a[1], a[2]))
        else:
            assigner = T.WindowAssigner_Session(a[1])
        fn = s["function"]
        function = (T.WindowFunction_Collect() if fn[0] == "collect"
                    else T.WindowFunction_Aggregate(_aggregate(fn[1], fn[2])))
        return T.VertexKind_Window(
            T.WindowSpec(assigner, _TIME[s["time"]], s["allowed_lateness_ms"], function))
    raise ValueError(f"unknown vertex kind {k}")


def to_wit(g):
    """The WIT ``job-graph`` of a built graph."""
    vertices = [T.Vertex(v.id, v.name, v.uid, _kind(v.kind), v.parallelism,
                         v.slot_sharing_group, v.keyed, v.per_key_updates)
                for v in g.vertices]
    edges = [T.Edge(e.source, e.target, _PARTITIONING[e.partitioning], e.side_output, e.input)
             for e in g.edges]
    # Values are JSON, but batches cross as marshal, which CPython reads and writes in C
    # several times faster than JSON: the host converts (wit/README.md, Batches of CPython
    # components).
    return T.JobGraph(g.name, vertices, edges, g.parallelism, g.max_parallelism,
                      T.ValueCodec.PYTHON_MARSHAL)


def _fail(e):
    raise Err(describe(e)) from None


class Planner(exports.Planner):
    def entries(self):
        return eddy.entries()

    def plan(self, entry, args):
        try:
            return to_wit(eddy.build(entry, args))
        except BaseException as e:
            _fail(e)


def select(registry, entry, indices):
    """Picks ``indices`` out of the registry, in that order: the instance's chain."""
    chain, taken = [], set()
    for i in indices:
        if i >= len(registry):
            raise eddy.EddyError(
                f"operator {i} does not exist: entry '{entry}' has {len(registry)} operators")
        if i in taken:
            raise eddy.EddyError(f"operator {i} selected twice")
        taken.add(i)
        chain.append(registry[i])
    return chain


_chain = None  # the operators of this instance, set by open


def _ops():
    if _chain is None:
        raise eddy.EddyError("operator.open has not succeeded on this instance")
    _ctx.reset_host_key()
    return _chain


class Operator(exports.Operator):
    def open(self, entry, args, operators, subtask):
        global _chain
        try:
            g = eddy.build(entry, args)
            _chain = select(g.registry, entry, operators)
        except BaseException as e:
            _fail(e)

    def process(self, input):
        try:
            return ops.run_batch(_ops(), input)
        except BaseException as e:
            _fail(e)
        finally:
            _ctx.flush_counters()

    def on_watermark(self, watermark):
        # No operator of this SDK acts on watermarks (timers fire through on_timer).
        try:
            _ops()
            return b""
        except BaseException as e:
            _fail(e)
        finally:
            _ctx.flush_counters()

    def on_timer(self, key, timestamp, domain):
        try:
            chain = _ops()
            _ctx.set_host_key(bytes(key))  # the host made the timer's key current
            d = (_ctx.TimeDomain.EVENT_TIME if domain == T.TimeDomain.EVENT_TIME
                 else _ctx.TimeDomain.PROCESSING_TIME)
            return ops.run_timer(chain, bytes(key), _ctx.Timer(timestamp, d))
        except BaseException as e:
            _fail(e)
        finally:
            _ctx.flush_counters()

    def close(self):
        try:
            _ops()
            return b""
        except BaseException as e:
            _fail(e)
        finally:
            _ctx.flush_counters()
