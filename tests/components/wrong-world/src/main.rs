//! Not an Eddy job: a plain command. Built for `wasm32-wasip2` it is a `wasi:cli` command
//! component, which the host must reject because it does not target the `job` world.

fn main() {
    println!("not an eddy job");
}
