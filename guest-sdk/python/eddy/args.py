"""Job arguments, parsed the way Flink's ``ParameterTool.fromArgs`` does (and exactly as the
Rust SDK's ``guest-sdk/src/args.rs``), so a job reads ``--input FILE`` the same in the
planner and in every operator instance, whatever language its operators are written in."""

import re

from .errors import EddyError

# Rust's `str::parse::<f64>` grammar: a token that parses as a number is a value, not an
# option (so `--n -5` gives n = -5). Python's float() also accepts `_` and spaces; Rust not.
_NUMBER = re.compile(
    r"[+-]?(?:inf|infinity|nan|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\Z", re.IGNORECASE
)


def _option_name(token):
    """The option a token names (``--name`` or ``-name``), or None if it is a value."""
    if token.startswith("--"):
        name = token[2:]
    elif token.startswith("-"):
        name = token[1:]
    else:
        return None
    if not name or _NUMBER.match(token):
        return None
    return name


def _parse_bool(v):
    # Rust's bool::from_str accepts exactly these two.
    if v == "true":
        return True
    if v == "false":
        return False
    raise ValueError("provided string was not `true` or `false`")


class Args:
    """Parsed job arguments: ``--key value``, ``--key=value`` and bare ``--flag`` (value
    ``"true"``). Other tokens are kept, in order, in :attr:`positional`. A later occurrence
    of an option overrides an earlier one; everything after a bare ``--`` is positional."""

    def __init__(self, tokens=()):
        tokens = list(tokens)
        self._options = {}
        self._positional = []
        i = 0
        while i < len(tokens):
            token = tokens[i]
            i += 1
            if token == "--":
                self._positional.extend(tokens[i:])
                break
            name = _option_name(token)
            if name is None:
                self._positional.append(token)
                continue
            if "=" in name:
                k, v = name.split("=", 1)
                self._options[k] = v
            elif i < len(tokens) and _option_name(tokens[i]) is None and tokens[i] != "--":
                self._options[name] = tokens[i]
                i += 1
            else:
                self._options[name] = "true"

    def get(self, name, default=None):
        """The value of ``--name``, or ``default`` (None) when absent."""
        return self._options.get(name, default)

    def get_or(self, name, default):
        """The value of ``--name``, or ``default``."""
        return self._options.get(name, default)

    def required(self, name):
        """The value of ``--name``; fails planning with ``missing required argument --name``."""
        v = self._options.get(name)
        if v is None:
            raise EddyError(f"missing required argument --{name}")
        return v

    def parse_or(self, name, default, parse=None):
        """``--name`` parsed by ``parse`` (default: the type of ``default``: int, float,
        bool or str), or ``default`` when absent. An unparsable value is an error, not a
        silent fallback, so typos surface at plan time."""
        v = self._options.get(name)
        if v is None:
            return default
        return self._parse(name, v, parse or _parser_for(default))

    def parse_required(self, name, parse=int):
        """``--name`` parsed by ``parse``; absent or unparsable is an error."""
        return self._parse(name, self.required(name), parse)

    @staticmethod
    def _parse(name, v, parse):
        try:
            return parse(v)
        except (ValueError, TypeError) as e:
            raise EddyError(f"invalid value '{v}' for --{name}: {e}") from None

    def has(self, name):
        """Whether ``--name`` was given (with or without a value)."""
        return name in self._options

    @property
    def positional(self):
        """Tokens that were not options or option values, in order."""
        return list(self._positional)

    def __repr__(self):
        return f"Args(options={self._options!r}, positional={self._positional!r})"


def _parser_for(default):
    if isinstance(default, bool):
        return _parse_bool
    if isinstance(default, int):
        return _parse_int
    if isinstance(default, float):
        return float
    return str


def _parse_int(v):
    # Rust's integer parsing: optional sign and digits only (int() would take `1_000`, ` 7`).
    if not re.fullmatch(r"[+-]?\d+", v):
        raise ValueError("invalid digit found in string")
    return int(v)
