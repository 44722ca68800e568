"""python -m assistant.admin add-user NAME [--role admin|viewer] [--file PATH]

Asks for the password twice (or reads one line from stdin when it is not a terminal, for
scripts), and writes its scrypt hash to the credentials file (ASSISTANT_ADMINS, default
build/data/admins.txt). Run it again to change a password; delete the line to remove someone.
"""
from __future__ import annotations

import argparse
import getpass
import sys

from .accounts import ROLES, Credentials


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m assistant.admin")
    sub = ap.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add-user", help="add an account or change its password")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="admin")
    add.add_argument("--file", help="credentials file (default: $ASSISTANT_ADMINS or build/data/admins.txt)")
    args = ap.parse_args(argv)
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\n")
    credentials = Credentials(args.file)
    try:
        credentials.add(args.name, password, args.role)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.name} ({args.role}) written to {credentials.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
