"""The ``npvae`` command line.

Every error a user can cause ends in a one-line message and exit code 2, never a traceback
(``--verbose`` shows it).
"""

import argparse
import sys

from .errors import NpvaeError

EXAMPLES = """examples:
  npvae gradcheck                 prove every hand-written gradient against finite differences
"""


def cmd_gradcheck(args):
    from . import gradcheck

    sections = gradcheck.all_checks(seed=args.seed)
    print(gradcheck.report(sections))
    return 0 if all(c.ok for _, cs in sections for c in cs) else 1


def build_parser():
    parser = argparse.ArgumentParser(
        prog="npvae", description="A variational autoencoder in NumPy, gradients by hand.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("gradcheck", help="print the gradient-check table",
                       description="Check every primitive and every parameter of small VAEs "
                                   "(each likelihood) against centred finite differences, "
                                   "in float64.")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.set_defaults(func=cmd_gradcheck)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (NpvaeError, ValueError, TypeError, OSError) as err:
        if args.verbose:
            raise
        print(f"npvae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"npvae {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
