#!/usr/bin/env python3
"""An independent evaluation of the Nexmark queries, for tests/nexmark.rs.

usage: reference.py QUERY EVENTS OUTPUT

Reads the events (a JSON-lines file, or a directory of part files, of the shared format:
one {"event_type","person","auction","bid"} object a line), computes QUERY's rows from the
reference SQL's semantics (../shared/bench/flink/nexmark/qN.sql) in plain Python, and
compares them, as a multiset, with the rows Eddy wrote under OUTPUT (part files, one JSON
object a line). Prints `QUERY: N rows, as the reference` and exits 0 when they match;
otherwise prints what differs and exits 1. Bounded input: every window fires at its end.
"""
import collections
import datetime
import json
import os
import sys

WINDOW = 10_000
SLIDE = 2_000
EPOCH = datetime.datetime(1970, 1, 1)


def ms(text):
    return int((datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f") - EPOCH).total_seconds() * 1000 + 0.5)


def text(t):
    return (EPOCH + datetime.timedelta(milliseconds=t)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def lines(path):
    files = sorted(os.path.join(path, f) for f in os.listdir(path) if not f.startswith(".")) if os.path.isdir(path) else [path]
    for f in files:
        with open(f) as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)


def split(events):
    persons, auctions, bids = [], [], []
    for e in events:
        [persons, auctions, bids][e["event_type"]].append(e[["person", "auction", "bid"][e["event_type"]]])
    return persons, auctions, bids


def q0(p, a, b):
    return [{"auction": x["auction"], "bidder": x["bidder"], "price": x["price"], "dateTime": x["dateTime"],
             "extra": x["extra"]} for x in b]


def q1(p, a, b):
    return [{"auction": x["auction"], "bidder": x["bidder"], "price": x["price"] * 908 / 1000,
             "dateTime": x["dateTime"], "extra": x["extra"]} for x in b]


def q2(p, a, b):
    return [{"auction": x["auction"], "price": x["price"]} for x in b if x["auction"] % 123 == 0]


def q3(p, a, b):
    sellers = {x["id"]: x for x in p if x["state"] in ("OR", "ID", "CA")}
    return [{"name": sellers[x["seller"]]["name"], "city": sellers[x["seller"]]["city"],
             "state": sellers[x["seller"]]["state"], "id": x["id"]}
            for x in a if x["category"] == 10 and x["seller"] in sellers]


def q4(p, a, b):
    """The final average per category (Eddy's output updates it; its last row counts)."""
    auctions = {x["id"]: x for x in a}
    best = {}
    for x in b:
        y = auctions.get(x["auction"])
        if y and y["dateTime"] <= x["dateTime"] <= y["expires"]:
            best[y["id"]] = max(best.get(y["id"], 0), x["price"])
    per_category = collections.defaultdict(list)
    for auction, price in best.items():
        per_category[auctions[auction]["category"]].append(price)
    return [{"id": c, "final": sum(v) // len(v)} for c, v in per_category.items()]


def last_per_key(rows, key):
    """An updating result: the last row of each key (a key's rows are in one part file, in order)."""
    last = {}
    for r in rows:
        last[r[key]] = r
    return list(last.values())


def q5(p, a, b):
    counts = collections.Counter()
    for x in b:
        t = ms(x["dateTime"])
        start = t - t % SLIDE
        while start > t - WINDOW:
            counts[(start, x["auction"])] += 1
            start -= SLIDE
    best = collections.defaultdict(int)
    for (start, _), n in counts.items():
        best[start] = max(best[start], n)
    return [{"auction": auction, "num": n, "window_start": text(start), "window_end": text(start + WINDOW)}
            for (start, auction), n in counts.items() if n == best[start]]


def q7(p, a, b):
    best = collections.defaultdict(int)
    for x in b:
        w = ms(x["dateTime"]) // WINDOW
        best[w] = max(best[w], x["price"])
    return [{"auction": x["auction"], "price": x["price"], "bidder": x["bidder"], "dateTime": x["dateTime"],
             "extra": x["extra"]} for x in b if x["price"] == best[ms(x["dateTime"]) // WINDOW]]


def q8(p, a, b):
    sellers = {(x["seller"], ms(x["dateTime"]) // WINDOW) for x in a}
    persons = {(x["id"], x["name"], ms(x["dateTime"]) // WINDOW) for x in p}
    return [{"id": i, "name": name, "stime": text(w * WINDOW)} for (i, name, w) in persons if (i, w) in sellers]


def q11(p, a, b):
    times = collections.defaultdict(list)
    for x in b:
        times[x["bidder"]].append(ms(x["dateTime"]))
    rows = []
    for bidder, ts in times.items():
        ts.sort()
        start, last, n = ts[0], ts[0], 0
        for t in ts:
            if t > last + WINDOW:  # [t, t + gap) windows merge when they overlap or touch
                rows.append({"bidder": bidder, "bid_count": n, "starttime": text(start), "endtime": text(last + WINDOW)})
                start, n = t, 0
            last, n = t, n + 1
        rows.append({"bidder": bidder, "bid_count": n, "starttime": text(start), "endtime": text(last + WINDOW)})
    return rows


def canonical(row):
    """A row's JSON with one spelling per number (JSON has one number type: 5.0 is 5)."""
    return json.dumps({k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in row.items()},
                      sort_keys=True)


QUERIES = {"q0": q0, "q1": q1, "q2": q2, "q3": q3, "q4": q4, "q5": q5, "q7": q7, "q8": q8, "q11": q11}


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in QUERIES:
        sys.exit(__doc__.split("\n\n")[1] + "\nqueries: " + " ".join(QUERIES))
    query, events, output = sys.argv[1:]
    expected = collections.Counter(canonical(r) for r in QUERIES[query](*split(lines(events))))
    rows = list(lines(output))
    if query == "q4":
        rows = last_per_key(rows, "id")
    got = collections.Counter(canonical(r) for r in rows)
    if got == expected:
        print(f"{query}: {sum(got.values())} rows, as the reference")
        return
    missing, extra = expected - got, got - expected
    print(f"{query}: {sum(got.values())} rows, the reference has {sum(expected.values())}; "
          f"{sum(missing.values())} missing, {sum(extra.values())} not in the reference", file=sys.stderr)
    for row in list(missing)[:5]:
        print(f"  missing: {row}", file=sys.stderr)
    for row in list(extra)[:5]:
        print(f"  extra:   {row}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
