// Nexmark queries q0-q3 in JavaScript (the Rust versions, with the others, are in
// examples/nexmark): the same rows, so tests/nexmark.rs checks them against the same
// reference. Every entry reads `--events N` (default 1 000 000) events of the host's
// generator (`--event-rate R` per second of event time, default 10 000 000), or the events
// of a JSON Lines file of the shared format with `--input FILE`, and writes its rows under
// `--output DIR`, prints them with `--print`, or drops them.
//
// - q0: every bid; q1: every bid, its price in euros; q2: the bids on auctions whose id is a
//   multiple of 123;
// - q3: auctions of category 10 with their sellers of OR, ID or CA: the persons and the
//   auctions as two streams, connected and keyed by the seller, joined in keyed state.
//
// Build: guest-sdk/js/build.sh examples/js/nexmark.js target/wasm32-wasip2/component/nexmark_js.wasm

import { entry } from "eddy";

const events = (env, args) =>
  args.has("input")
    ? env.readNexmarkFile(args.required("input"))
    : env.readNexmark(args.parseOr("events", 1_000_000), { eventRate: args.parseOr("event-rate", 10_000_000) });

function sink(rows, args) {
  if (args.has("output")) rows.writeTextFile(args.required("output"));
  else if (args.has("print")) rows.print();
  else rows.discard();
}

const bids = (events) =>
  events
    .filter((e) => e.event_type === 2)
    .map((e) => e.bid)
    .name("bids");

entry("q0", (env, args) => {
  const rows = bids(events(env, args)).map((b) => ({
    auction: b.auction,
    bidder: b.bidder,
    price: b.price,
    dateTime: b.dateTime,
    extra: b.extra,
  }));
  sink(rows.name("q0"), args);
});

entry("q1", (env, args) => {
  const rows = bids(events(env, args)).map((b) => ({
    auction: b.auction,
    bidder: b.bidder,
    price: (b.price * 908) / 1000,
    dateTime: b.dateTime,
    extra: b.extra,
  }));
  sink(rows.name("q1"), args);
});

entry("q2", (env, args) => {
  const rows = bids(events(env, args))
    .filter((b) => b.auction % 123 === 0)
    .map((b) => ({ auction: b.auction, price: b.price }));
  sink(rows.name("q2"), args);
});

entry("q3", (env, args) => {
  const all = events(env, args);
  const persons = all
    .filter((e) => e.event_type === 0 && ["OR", "ID", "CA"].includes(e.person.state))
    .map((e) => e.person)
    .name("sellers of OR, ID, CA");
  const auctions = all
    .filter((e) => e.event_type === 1 && e.auction.category === 10)
    .map((e) => e.auction)
    .name("auctions of category 10");
  const rows = persons
    .connect(auctions)
    .keyBy(
      (p) => p.id,
      (a) => a.seller,
    )
    .process(
      (ctx, p) => {
        // A seller came: the auctions that waited for them go out, and they stay known.
        const waiting = ctx.listState("auctions");
        for (const id of waiting.get()) ctx.collect({ name: p.name, city: p.city, state: p.state, id });
        waiting.clear();
        ctx.valueState("person").set([p.name, p.city, p.state]);
      },
      (ctx, a) => {
        const person = ctx.valueState("person").get();
        if (person === undefined || person === null) ctx.listState("auctions").add(a.id);
        else ctx.collect({ name: person[0], city: person[1], state: person[2], id: a.id });
      },
    )
    .name("join auctions with sellers");
  sink(rows.name("q3"), args);
});
