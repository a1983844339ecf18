"""python3 -m earshot_verify BUNDLE.json --key KEY [--checkpoint EARLIER_CHECKPOINT]
python3 -m earshot_verify checkpoint CHECKPOINT --key KEY
    [--checkpoint EARLIER --consistency PROOF.json]
python3 -m earshot_verify receipt RECEIPT --key KEY [--bundle BUNDLE.json]

KEY is a verifier key (`<name>+<hex>+<base64>`), as text or as a file holding it.
Exit 0 when everything holds; 1 naming the first thing that does not; 2 for bad usage.
"""

import argparse
import json
import sys
from pathlib import Path

from .jws import ReceiptError, receipt_open
from .note import NoteError, parse_verifier_key
from .verify import (
    VerificationFailed,
    bundle_verified,
    checkpoint_verified,
    consistent,
    receipt_bound,
    receipt_self_bound,
)


def _read(value: str) -> str:
    path = Path(value)
    try:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    except OSError:
        pass
    return value


def _read_file(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise VerificationFailed(f"cannot read the {what} {path}: {exc}") from exc


def _json(path: str, what: str) -> object:
    try:
        return json.loads(_read_file(path, what))
    except ValueError as exc:
        raise VerificationFailed(f"the {what} {path} is not JSON: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    mode = argv[0] if argv and argv[0] in ("checkpoint", "receipt") else "bundle"
    parser = argparse.ArgumentParser(prog="python3 -m earshot_verify", description=__doc__)
    parser.add_argument("target", help="the bundle (JSON), or the checkpoint after 'checkpoint'")
    parser.add_argument("--key", required=True, help="verifier key, or a file holding it")
    parser.add_argument("--checkpoint", help="an earlier checkpoint you kept")
    parser.add_argument("--consistency", help="consistency proof JSON {from, to, hashes}")
    parser.add_argument("--bundle", help="with a receipt: a bundle holding its ledger entry")
    args = parser.parse_args(argv if mode == "bundle" else argv[1:])
    try:
        try:
            verifier = parse_verifier_key(_read(args.key))
        except NoteError as exc:
            raise VerificationFailed(f"the key: {exc}") from exc
        earlier = _read_file(args.checkpoint, "earlier checkpoint") if args.checkpoint else None
        if mode == "receipt":
            token = _read(args.target).strip()
            try:
                claims = receipt_open(token, verifier)
            except ReceiptError as exc:
                raise VerificationFailed(f"the receipt: {exc}") from exc
            ledger = claims.get("ledger") if isinstance(claims.get("ledger"), dict) else {}
            receipt_self_bound(claims)
            if args.bundle:
                checkpoint = receipt_bound(claims, _json(args.bundle, "bundle"), verifier)
                print(
                    f"OK: receipt signed, bound to ledger entry #{ledger.get('seq')}, proven in "
                    f"the checkpoint at size {checkpoint.tree_size}"
                )
            else:
                print(f"OK: receipt signed, for ledger entry #{ledger.get('seq')}")
        elif mode == "checkpoint":
            checkpoint = checkpoint_verified(_read_file(args.target, "checkpoint"), verifier)
            if earlier is not None:
                proof = _json(args.consistency, "consistency proof") if args.consistency else None
                consistent(
                    checkpoint_verified(earlier, verifier, "the earlier checkpoint"),
                    checkpoint,
                    proof,
                )
            print(f"OK: checkpoint of {checkpoint.origin} at size {checkpoint.tree_size}")
        else:
            checkpoint, count = bundle_verified(
                _json(args.target, "bundle"), verifier, earlier=earlier
            )
            print(
                f"OK: {count} entries proven in the checkpoint of {checkpoint.origin} at size "
                f"{checkpoint.tree_size}"
            )
    except VerificationFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
