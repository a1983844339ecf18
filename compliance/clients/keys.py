import hashlib


def api_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
