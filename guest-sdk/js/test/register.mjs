// Lets Node run the SDK natively for tests: `node --import ./test/register.mjs --test test/`.
// The host import `eddy:stream/host@0.1.0` resolves to an in-memory fake host, and the bare
// specifier "eddy" to the SDK, as build.sh arranges inside a component.
import { register } from "node:module";

register("./hooks.mjs", import.meta.url);
