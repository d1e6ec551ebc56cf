"""greet: prints a greeting from a packaged template.

`templates/` is read-only data the app needs at run time and ships in the
bundle. `var/` is where the app keeps run-time state (a counter) when run from
a checkout; it is package data in development but must not end up in a
release bundle, so the recipe prunes it.
"""

import argparse
import os
from importlib import resources


def main() -> None:
    parser = argparse.ArgumentParser(prog="greet")
    parser.add_argument("--name", default="world")
    args = parser.parse_args()
    template = resources.files(__package__).joinpath("templates/hello.txt").read_text()
    print(template.strip().format(name=args.name))
    state = os.environ.get("GREET_STATE_DIR")
    if state:
        os.makedirs(state, exist_ok=True)
        with open(os.path.join(state, "count"), "a") as f:
            f.write("1\n")
