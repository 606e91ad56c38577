"""Nexmark queries q0-q3 in Python (the Rust versions, with the others, are in
examples/nexmark): the same rows, so tests/nexmark.rs checks them against the same
reference.

Every entry reads ``--events N`` (default 1 000 000) events of the host's generator
(``--event-rate R`` per second of event time, default 10 000 000), or the events of a JSON
Lines file of the shared format with ``--input FILE``, and writes its rows under
``--output DIR``, prints them with ``--print``, or drops them.

- ``q0``: every bid; ``q1``: every bid, its price in euros (``q1-step``: the same as an
  operator entry, for job files); ``q2``: the bids on auctions whose id is a multiple of 123;
- ``q3``: auctions of category 10 with their sellers of OR, ID or CA: the persons and the
  auctions as two streams, connected and keyed by the seller, joined in keyed state.
"""

import eddy


def events(env, args):
    path = args.get("input")
    if path is not None:
        return env.read_nexmark_file(path)
    return env.read_nexmark(args.parse_or("events", 1_000_000),
                            event_rate=args.parse_or("event-rate", 10_000_000))


def sink(rows, args):
    output = args.get("output")
    if output is not None:
        rows.write_text_file(output)
    elif args.has("print"):
        rows.print()
    else:
        rows.discard()


def bids(events):
    return events.filter(lambda e: e["event_type"] == 2).map(lambda e: e["bid"]).name("bids")


@eddy.entry("q0")
def q0(env, args):
    rows = bids(events(env, args)).map(lambda b: {
        "auction": b["auction"], "bidder": b["bidder"], "price": b["price"],
        "dateTime": b["dateTime"], "extra": b["extra"]})
    sink(rows.name("q0"), args)


def in_euros(b):
    return {"auction": b["auction"], "bidder": b["bidder"], "price": b["price"] * 908 / 1000,
            "dateTime": b["dateTime"], "extra": b["extra"]}


@eddy.entry("q1")
def q1(env, args):
    sink(bids(events(env, args)).map(in_euros).name("q1"), args)


@eddy.entry("q1-step")
def q1_step(env, args):
    """q1 as an operator entry, a step of a job file whose source gives the events."""
    bids(env.input()).map(in_euros).name("q1")


@eddy.entry("q2")
def q2(env, args):
    rows = (bids(events(env, args))
            .filter(lambda b: b["auction"] % 123 == 0)
            .map(lambda b: {"auction": b["auction"], "price": b["price"]}))
    sink(rows.name("q2"), args)


def on_person(ctx, p):
    """A seller came: the auctions that waited for them go out, and they stay known."""
    waiting = ctx.list_state("auctions")
    for auction in waiting.get():
        ctx.collect({"name": p["name"], "city": p["city"], "state": p["state"], "id": auction})
    waiting.clear()
    ctx.value_state("person").set([p["name"], p["city"], p["state"]])


def on_auction(ctx, a):
    person = ctx.value_state("person").get()
    if person is None:
        ctx.list_state("auctions").add(a["id"])
    else:
        name, city, state = person
        ctx.collect({"name": name, "city": city, "state": state, "id": a["id"]})


@eddy.entry("q3")
def q3(env, args):
    all_events = events(env, args)
    persons = (all_events.filter(lambda e: e["event_type"] == 0 and e["person"]["state"] in ("OR", "ID", "CA"))
               .map(lambda e: e["person"]).name("sellers of OR, ID, CA"))
    auctions = (all_events.filter(lambda e: e["event_type"] == 1 and e["auction"]["category"] == 10)
                .map(lambda e: e["auction"]).name("auctions of category 10"))
    rows = (persons.connect(auctions)
            .key_by(lambda p: p["id"], lambda a: a["seller"])
            .process(on_person, on_auction).name("join auctions with sellers"))
    sink(rows.name("q3"), args)
