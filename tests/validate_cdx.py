#!/usr/bin/env python3
"""Validates CycloneDX JSON documents against CycloneDX's own JSON schema.

Used by tests/sbom_*.rs as an independent check of hermetic's SBOMs, through
cyclonedx-python-lib (https://github.com/CycloneDX/cyclonedx-python-lib) and
its strict JSON validator, which ships the official schemas.

Usage: validate_cdx.py <spec-version> <file.json>...
Exit status: 0 all valid, 1 some invalid (errors on stderr), 2 usage error.
"""

import sys

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    validator = JsonStrictValidator(SchemaVersion.from_version(argv[1]))
    failed = False
    for path in argv[2:]:
        with open(path, encoding="utf-8") as f:
            errors = validator.validate_str(f.read(), all_errors=True)
        for error in errors or ():
            # error.data is the jsonschema error: show where and what, not
            # the whole schema fragment.
            detail = getattr(error, "data", None)
            where = getattr(detail, "json_path", "?")
            what = getattr(detail, "message", str(error))
            print(f"{path}: {where}: {what}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
