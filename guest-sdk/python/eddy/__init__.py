"""Eddy jobs in Python.

An Eddy job is a WebAssembly component for the ``eddy:stream/job`` world
(``wit/eddy.wit``). This package lets you write one the way you would write a Flink
DataStream job: a function builds a pipeline on an :class:`Env`, and :func:`entry`
registers it under a name::

    import eddy

    @eddy.entry("lengths")
    def lengths(env, args):
        env.read_text_file(args.required("input")).map(len).print()

``guest-sdk/python/build.sh job.py job.wasm`` turns the module into a component.

The same job function runs in two places, which is why it must be deterministic: the
planner runs it to return the graph, and every operator instance re-runs it to rebuild the
registry of user functions and pick the ones the host assigned to it. Graphs and registry
indices are the same as the Rust SDK's for the same program.
"""

from . import text
from .args import Args
from .ctx import (BroadcastContext, BroadcastState, Context, KeyedContext,
                  KeyedReadOnlyBroadcastContext, Level, ListState, MapState,
                  ReadOnlyBroadcastContext, ReadOnlyBroadcastState, TimeDomain, TimeWindow,
                  Timer, ValueState, counter, info, log)
from .errors import EddyError
from .joins import IntervalJoin, JoinedStreams, JoinedWindows
from .graph import (AllWindowedStream, BroadcastConnectedStreams, BroadcastStream, ConnectedStreams, DataSink, Env,
                    KeyedConnectedStreams, KeyedStream, Stream, Window, WindowedStream)

__all__ = [
    "AllWindowedStream", "Args", "BroadcastConnectedStreams", "BroadcastContext", "BroadcastState", "BroadcastStream",
    "KeyedReadOnlyBroadcastContext", "ReadOnlyBroadcastContext", "ReadOnlyBroadcastState",
    "ConnectedStreams", "IntervalJoin", "JoinedStreams", "JoinedWindows", "Context", "DataSink", "EddyError", "Env", "KeyedConnectedStreams",
    "KeyedContext", "KeyedStream", "Level",
    "ListState", "MapState", "Stream", "TimeDomain", "TimeWindow", "Timer", "ValueState",
    "Window", "WindowedStream", "counter", "entry", "entries", "info", "log", "text",
]

# Entry name -> job function, in registration order (the order `planner.entries` lists).
_ENTRIES = {}


def entry(name):
    """Registers the decorated function ``f(env, args)`` as the job entry ``name``."""
    def register(f):
        if name in _ENTRIES and _ENTRIES[name] is not f:
            raise EddyError(f"entry '{name}' is registered twice")
        _ENTRIES[name] = f
        return f
    return register


def entries():
    """The registered entry names, in order."""
    return list(_ENTRIES)


def build(name, args):
    """Runs entry ``name`` with argument tokens ``args`` against a fresh Env and returns
    the graph (with its operator registry). Usable natively, to test a job's graph."""
    job = _ENTRIES.get(name)
    if job is None:
        raise EddyError(f"unknown entry '{name}'; this component offers: "
                        + ", ".join(_ENTRIES))
    env = Env(name)
    job(env, Args(args))
    return env._finish()
