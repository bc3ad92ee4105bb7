#!/usr/bin/env python3
"""Check that Cargo.toml's rust-version is at least what the locked build needs.

Reads `cargo metadata --locked` and finds the highest `rust-version` declared
by any crate in wxgate's normal and build dependency closure (what `cargo
build` compiles; dev-dependencies are left out, as an MSRV build leaves
them). Fails when that is newer than the package's own rust-version, which
would make the MSRV claim false. clippy's `incompatible_msrv` lint covers the
other half: wxgate's own code using a std API newer than the claim.

  scripts/check-msrv.py            # prints the claim and the five newest needs
"""
import json
import subprocess
import sys


def version(v):
    return tuple(int(x) for x in (v or "0").split(".")[:3]) + (0,) * (3 - len((v or "0").split(".")[:3]))


def main():
    meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--locked"],
                                     check=True, capture_output=True, text=True).stdout)
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    root = meta["resolve"]["root"]
    claim = packages[root].get("rust_version")
    if not claim:
        print("check-msrv: Cargo.toml declares no rust-version", file=sys.stderr)
        return 1
    seen, stack = set(), [root]
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for dep in nodes[pid]["deps"]:
            if any(k["kind"] in (None, "build") for k in dep["dep_kinds"]):
                stack.append(dep["pkg"])
    needs = sorted(((packages[p].get("rust_version"), packages[p]["name"], packages[p]["version"])
                    for p in seen - {root} if packages[p].get("rust_version")),
                   key=lambda r: version(r[0]))
    print("check-msrv: rust-version %s; newest needs: %s" % (
        claim, ", ".join("%s %s (%s)" % (n, v, rv) for rv, n, v in needs[-5:])))
    too_new = [(rv, n, v) for rv, n, v in needs if version(rv) > version(claim)]
    if too_new:
        for rv, n, v in too_new:
            print("check-msrv: %s %s needs Rust %s > rust-version %s" % (n, v, rv, claim), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
