"""
What the scripts share: `--key=value` configuration, user-facing errors, and
files written atomically.

Configuration is plain Python. Each script keeps its defaults in one dict; a
config file is a list of plain assignments (`n_layer = 4`); `--key=value`
options go on top. Every key must already exist among the defaults and every
value must have the default's type, so a typo is an error that names the key
and its close matches, never a silent no-op:

    cfg = parse_config(DEFAULTS, sys.argv[1:])
"""

import ast
import difflib
import os
import sys
import tempfile
from contextlib import contextmanager


class UserError(Exception):
    """An error the user caused and can fix: printed as one sentence, no traceback."""


def _close_matches(key, known):
    matches = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(m) for m in matches)}?)" if matches else ""


def check_value(key, value, defaults, where):
    """Return value if it fits the default's type (an int is a fine float), else raise UserError."""
    if key not in defaults:
        raise UserError(f"unknown option {key!r} in {where}{_close_matches(key, defaults)}; "
                        f"known options: {', '.join(sorted(defaults))}")
    default = defaults[key]
    if default is None or value is None:
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, bool) != isinstance(value, bool) or not isinstance(value, type(default)):
        raise UserError(f"option {key!r} in {where} must be of type {type(default).__name__}, "
                        f"got {value!r} ({type(value).__name__})")
    return value


def parse_literal(text):
    """'3' -> 3, '1e-3' -> 0.001, 'True' -> True, 'hello' -> 'hello'."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def read_config_file(path):
    """The assignments of a config file as a dict; anything but `name = literal` is refused."""
    try:
        with open(path, encoding="utf-8") as f:
            source = f.read()
    except OSError as e:
        raise UserError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as e:
        raise UserError(f"config file {path} line {e.lineno} is not valid Python: {e.msg}") from None
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            raise UserError(f"config file {path} line {node.lineno}: only `name = value` lines are allowed")
        try:
            values[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise UserError(f"config file {path} line {node.lineno}: the value of "
                            f"{node.targets[0].id!r} must be a literal (number, string, bool, None)") from None
    return values


def print_help(defaults):
    """The running script's docstring, then every option with its default."""
    doc = getattr(sys.modules.get("__main__"), "__doc__", None)
    if doc:
        print(doc.strip() + "\n")
    print("options (defaults shown; config files are plain `name = value` lines):")
    for key, value in defaults.items():
        print(f"  --{key}={value!r}")


def parse_config(defaults, argv):
    """defaults, then config files (args without --), then --key=value overrides, in order."""
    cfg = dict(defaults)
    for arg in argv:
        if arg in ("-h", "--help"):
            print_help(defaults)
            raise SystemExit(0)
        if arg.startswith("--"):
            key, eq, text = arg[2:].partition("=")
            if not eq:
                raise UserError(f"option {arg!r} needs a value: write --{key}=VALUE")
            cfg[key] = check_value(key, parse_literal(text), defaults, "the command line")
        else:
            for key, value in read_config_file(arg).items():
                cfg[key] = check_value(key, value, defaults, f"config file {arg}")
    return cfg


def first_line(e, limit=200):
    """The first line of an exception's message (its class name if it has none), cut to limit."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:limit]


def run_main(main):
    """Run a script's main(); a UserError or Ctrl-C ends in one line and a non-zero exit."""
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:
        # torch.compile's backend (inductor) could not build the code: most often no C++ compiler
        # (CPU) or no Triton (GPU). Other errors, compile's included, keep their traceback.
        if not any(c.__name__ == "BackendCompilerFailed" and c.__module__ == "torch._dynamo.exc"
                   for c in type(e).__mro__):
            raise
        print(f"error: torch.compile could not build the code ({first_line(e)}); it needs a working C++ "
              f"compiler on a CPU and Triton on a GPU: install them or run again with --compile=False",
              file=sys.stderr)
        sys.exit(1)


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, else removed.

    A crash or kill mid-write leaves the old file (or none), never a half-written one.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
