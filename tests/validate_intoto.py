#!/usr/bin/env python3
"""Validates in-toto Statement v1 files carrying a SLSA Provenance v1 predicate.

Used by tests/build.rs as an independent check of hermetic's provenance,
through the in-toto project's own protobuf bindings (PyPI package
in-toto-attestation): the statement and the predicate are parsed strictly
(an unknown or misspelt field is an error), then checked with the bindings'
Statement.validate() and with the required fields of the SLSA Provenance v1
specification (https://slsa.dev/spec/v1.0/provenance), which the Python
bindings do not check themselves.

Usage: validate_intoto.py <statement.json>...
Exit status: 0 all valid, 1 some invalid (errors on stderr), 2 usage error.
"""

import json
import re
import sys

from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
HEX = {"sha256": 64, "sha512": 128, "sha1": 40}


def check_descriptor(where, rd_pb, need_digest=False):
    ResourceDescriptor.copy_from_pb(rd_pb).validate()
    if need_digest and len(rd_pb.digest) == 0:
        raise ValueError(f"{where}: a digest is required")
    for algorithm, value in rd_pb.digest.items():
        length = HEX.get(algorithm)
        if length and not re.fullmatch(f"[0-9a-f]{{{length}}}", value):
            raise ValueError(f"{where}: digest {algorithm} is not {length} lowercase hex digits: {value!r}")


def validate(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    document = json.loads(text)
    statement_pb = json_format.Parse(text, statement_pb2.Statement())
    Statement.copy_from_pb(statement_pb).validate()
    for i, subject in enumerate(statement_pb.subject):
        check_descriptor(f"subject[{i}]", subject, need_digest=True)
    if statement_pb.predicate_type != SLSA_PROVENANCE_V1:
        raise ValueError(f"predicateType is {statement_pb.predicate_type!r}, not {SLSA_PROVENANCE_V1}")

    provenance = json_format.ParseDict(document["predicate"], provenance_pb2.Provenance())
    bd = provenance.build_definition
    if not provenance.HasField("build_definition"):
        raise ValueError("predicate.buildDefinition is required")
    if not bd.build_type:
        raise ValueError("buildDefinition.buildType is required")
    if not bd.HasField("external_parameters") or len(bd.external_parameters) == 0:
        raise ValueError("buildDefinition.externalParameters is required")
    for i, dep in enumerate(bd.resolved_dependencies):
        check_descriptor(f"resolvedDependencies[{i}]", dep)
    rd = provenance.run_details
    if not provenance.HasField("run_details"):
        raise ValueError("predicate.runDetails is required")
    if not rd.builder.id:
        raise ValueError("runDetails.builder.id is required")
    for i, dep in enumerate(rd.builder.builder_dependencies):
        check_descriptor(f"builderDependencies[{i}]", dep)
    for i, byproduct in enumerate(rd.byproducts):
        check_descriptor(f"byproducts[{i}]", byproduct)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    failed = False
    for path in argv[1:]:
        try:
            validate(path)
        except (ValueError, KeyError, json_format.ParseError) as e:
            print(f"{path}: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
