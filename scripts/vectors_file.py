"""What the vector generators share: write the JSON file, or (--check)
compare it byte for byte with what is on disk and fail on any difference."""
import argparse
import json
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(description, out, build, label):
    """Parses --check, renders build() and writes or checks `out`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="compare with the file on disk")
    args = parser.parse_args()
    text = json.dumps(build(), ensure_ascii=False, indent=2) + "\n"
    rel = os.path.relpath(out, REPO_ROOT)
    if args.check:
        try:
            with open(out, encoding="utf-8") as f:
                on_disk = f.read()
        except FileNotFoundError:
            on_disk = None
        if on_disk != text:
            print(f"{rel} differs from what {os.path.basename(sys.argv[0])} writes", file=sys.stderr)
            sys.exit(1)
        print(f"{label} vectors: up to date")
        return
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {rel}")
