"""Earshot's offline verifier: checks signed checkpoints, Merkle proofs, receipts and
evidence bundles with the standard library and `cryptography` only, so that whoever
runs it needs to trust neither Earshot's operator nor its database.

It deliberately imports nothing from Django or the service."""
