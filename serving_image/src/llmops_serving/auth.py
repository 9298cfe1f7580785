"""Authentication: named API keys (stored as SHA-256 hashes) and JWT bearer tokens.

API keys are long random secrets, so a plain SHA-256 is enough to make a leaked
key file useless (no need for a slow password hash); the presented key is hashed
and compared with every stored hash using hmac.compare_digest, so the time taken
does not depend on where a mismatch occurs or which entry matched.

JWTs: HS256 with a shared secret file, RS256 with a PEM public key or a JWKS file
(key picked by `kid`). Signature, `exp` (required), `iss` and `aud` (when
configured) are checked by PyJWT; the algorithm list is fixed per key type so
a token cannot choose its own algorithm ("alg": "none" / HS-with-public-key).
"""
from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import json
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import jwt


@dataclass(frozen=True)
class Principal:
    name: str
    method: str  # api_key | jwt | anonymous


class AuthError(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_key_hashes(text: str) -> dict[str, str]:
    """Accepts 'name:hash' entries separated by newlines or commas, or a JSON/YAML mapping."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        data = json.loads(text)
    elif "\n" in text and ": " in text and not text.startswith("#"):
        import yaml
        data = yaml.safe_load(text)
    else:
        data = {}
        for item in text.replace("\n", ",").split(","):
            item = item.strip()
            if not item or item.startswith("#"):
                continue
            name, _, digest = item.partition(":")
            data[name.strip()] = digest.strip()
    out = {}
    for name, digest in data.items():
        digest = str(digest).strip().lower()
        if digest.startswith("sha256:"):
            digest = digest[7:]
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"API key entry {name!r} is not a SHA-256 hex digest (store hashes, never keys)")
        out[str(name)] = digest
    return out


class Authenticator:
    def __init__(self, settings):
        self.enabled = settings.auth_enabled
        hashes: dict[str, str] = {}
        if settings.api_keys_file:
            hashes.update(parse_key_hashes(Path(settings.api_keys_file).read_text(encoding="utf-8")))
        if settings.api_keys:
            hashes.update(parse_key_hashes(settings.api_keys))
        self._keys = [(name, bytes.fromhex(d)) for name, d in hashes.items()]
        self.issuer = settings.jwt_issuer or None
        self.audience = settings.jwt_audience or None
        self.claim = settings.jwt_principal_claim
        self.leeway = settings.jwt_leeway_seconds
        self._hs_secret = None
        if settings.jwt_hs256_secret_file:
            self._hs_secret = Path(settings.jwt_hs256_secret_file).read_bytes().strip()
            if len(self._hs_secret) < 32:
                raise ValueError("JWT HS256 secret must be at least 32 bytes")
        self._rsa_key = None
        if settings.jwt_public_key_file:
            from cryptography.hazmat.primitives.serialization import load_pem_public_key
            self._rsa_key = load_pem_public_key(Path(settings.jwt_public_key_file).read_bytes())
        self._jwks: dict[str, object] = {}
        if settings.jwt_jwks_file:
            data = json.loads(Path(settings.jwt_jwks_file).read_text(encoding="utf-8"))
            for jwk in data.get("keys", []):
                if jwk.get("kty") == "RSA":
                    self._jwks[jwk.get("kid", "")] = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
        if self.enabled and not (self._keys or self._hs_secret or self._rsa_key or self._jwks):
            raise ValueError("auth is enabled but no API key hashes or JWT keys are configured "
                             "(set LLMOPS_API_KEYS_FILE / LLMOPS_JWT_* or LLMOPS_AUTH_ENABLED=false)")

    @property
    def jwt_enabled(self) -> bool:
        return bool(self._hs_secret or self._rsa_key or self._jwks)

    def authenticate(self, headers) -> Principal:
        if not self.enabled:
            return Principal("anonymous", "anonymous")
        token = None
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
        elif headers.get("x-api-key"):
            token = headers.get("x-api-key").strip()
        if not token:
            raise AuthError("missing", "Missing credentials: send 'Authorization: Bearer <API key or JWT>'.")
        if token.count(".") == 2 and self.jwt_enabled:
            return self._jwt(token)
        return self._api_key(token)

    def _api_key(self, key: str) -> Principal:
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        found = None
        for name, stored in self._keys:  # no early exit: every entry is compared
            if hmac.compare_digest(digest, stored) and found is None:
                found = name
        if found is None:
            raise AuthError("invalid_api_key", "Incorrect API key provided.")
        return Principal(found, "api_key")

    def _jwt(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("invalid_token", "Malformed bearer token.")
        alg = header.get("alg")
        if alg == "HS256" and self._hs_secret:
            key, algs = self._hs_secret, ["HS256"]
        elif alg == "RS256" and (self._rsa_key or self._jwks):
            key = None
            if self._jwks:
                kid = header.get("kid")
                if kid is not None:
                    key = self._jwks.get(kid)
                elif len(self._jwks) == 1:
                    key = next(iter(self._jwks.values()))
            if key is None:
                key = self._rsa_key
            if key is None:
                raise AuthError("invalid_token", "Unknown JWT key id.")
            algs = ["RS256"]
        else:
            raise AuthError("invalid_token", "JWT algorithm not accepted.")
        options = {"require": ["exp"] + (["iss"] if self.issuer else []) + (["aud"] if self.audience else [])}
        try:
            claims = jwt.decode(token, key=key, algorithms=algs, issuer=self.issuer, audience=self.audience,
                                leeway=self.leeway, options=options)
        except jwt.ExpiredSignatureError:
            raise AuthError("expired_token", "JWT has expired.")
        except jwt.InvalidAudienceError:
            raise AuthError("invalid_token", "JWT audience not accepted.")
        except jwt.InvalidIssuerError:
            raise AuthError("invalid_token", "JWT issuer not accepted.")
        except jwt.PyJWTError:
            raise AuthError("invalid_token", "JWT could not be verified.")
        name = claims.get(self.claim)
        if not name:
            raise AuthError("invalid_token", f"JWT has no '{self.claim}' claim.")
        return Principal(str(name), "jwt")


def hash_key_main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Print 'name:sha256' for an API key (or generate a new key).")
    p.add_argument("name")
    p.add_argument("--generate", action="store_true", help="generate a random key and print it once on stderr")
    a = p.parse_args(argv)
    if a.generate:
        key = "sk-" + secrets.token_urlsafe(32)
        print(key, file=sys.stderr)
    else:
        key = getpass.getpass("API key: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
    print(f"{a.name}:{hash_key(key)}")
