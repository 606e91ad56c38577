// Job arguments, parsed the way Flink's `ParameterTool.fromArgs` does and exactly as the Rust
// SDK's `Args` (guest-sdk/src/args.rs), so a job reads `--input FILE` the same in the planner
// and in every operator instance, whatever language it is written in.

// What Rust's `str::parse::<f64>` accepts: a token that parses is a value (`-5`), not an option.
const F64 = /^[+-]?(?:inf|infinity|nan|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)$/i;

/** The option name of `token` (`--name` or `-name`), or null if it is a value. */
function optionName(token) {
  let name;
  if (token.startsWith("--")) name = token.slice(2);
  else if (token.startsWith("-")) name = token.slice(1);
  else return null;
  if (name === "" || F64.test(token)) return null;
  return name;
}

/**
 * Parsed job arguments: `--key value`, `--key=value` and bare `--flag` (value "true").
 * Tokens that are neither options nor option values are kept in order in `positional`;
 * a later occurrence of an option overrides an earlier one.
 */
export class Args {
  constructor(tokens = []) {
    this.options = new Map();
    this.positional = [];
    let i = 0;
    while (i < tokens.length) {
      const token = tokens[i++];
      if (token === "--") {
        // Everything after a bare `--` is positional, as with most CLIs.
        this.positional.push(...tokens.slice(i));
        break;
      }
      const name = optionName(token);
      if (name === null) {
        this.positional.push(token);
        continue;
      }
      const eq = name.indexOf("=");
      if (eq >= 0) {
        this.options.set(name.slice(0, eq), name.slice(eq + 1));
      } else if (i < tokens.length && optionName(tokens[i]) === null && tokens[i] !== "--") {
        this.options.set(name, tokens[i++]);
      } else {
        this.options.set(name, "true");
      }
    }
  }

  /** Parses argument tokens (without a program name). */
  static parse(tokens) {
    return new Args(tokens);
  }

  /** The value of `--name`, or undefined. */
  get(name) {
    return this.options.get(name);
  }

  /** The value of `--name`, or `fallback`. */
  getOr(name, fallback) {
    const v = this.options.get(name);
    return v === undefined ? fallback : v;
  }

  /** The value of `--name`; throws `missing required argument --name` when absent. */
  required(name) {
    const v = this.options.get(name);
    if (v === undefined) throw `missing required argument --${name}`;
    return v;
  }

  /** Whether `--name` was given (with or without a value). */
  has(name) {
    return this.options.has(name);
  }

  /**
   * `--name` converted to the type of `fallback` (integer, number, bigint, boolean or string), or
   * `fallback` when absent. An unparsable value is an error rather than a silent fallback,
   * so typos surface at plan time.
   */
  parseOr(name, fallback) {
    const v = this.options.get(name);
    if (v === undefined) return fallback;
    // An integer default asks for an integer, as a Rust `parse_or("n", 7u64)` does.
    const type = typeof fallback === "number" && Number.isInteger(fallback) ? "int" : typeof fallback;
    return convert(name, v, type);
  }

  /** `--name` as a number; absent or unparsable is an error. */
  number(name) {
    return convert(name, this.required(name), "number");
  }

  /** `--name` as an integer (BigInt when it exceeds 2^53); absent or unparsable is an error. */
  integer(name) {
    return convert(name, this.required(name), "integer");
  }
}

function convert(name, v, type) {
  const bad = (why) => {
    throw `invalid value '${v}' for --${name}: ${why}`;
  };
  switch (type) {
    case "number": {
      if (!F64.test(v)) bad("invalid float literal");
      const lower = v.toLowerCase();
      if (lower.includes("inf")) return lower.startsWith("-") ? -Infinity : Infinity;
      return lower.includes("nan") ? NaN : Number(v);
    }
    case "int":
      if (!/^[+-]?\d+$/.test(v)) bad("invalid digit found in string");
      return Number(v);
    case "integer":
    case "bigint": {
      if (!/^[+-]?\d+$/.test(v)) bad("invalid digit found in string");
      const n = BigInt(v);
      return type === "bigint" || n > BigInt(Number.MAX_SAFE_INTEGER) || n < -BigInt(Number.MAX_SAFE_INTEGER)
        ? n
        : Number(n);
    }
    case "boolean":
      if (v === "true") return true;
      if (v === "false") return false;
      return bad("provided string was not `true` or `false`");
    default:
      return v;
  }
}
