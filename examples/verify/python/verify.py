# examples/verify/python/verify.py
import json
import os
import sys

import jwt

ISSUER = os.environ.get("WXLOGIN_ISSUER", "https://login.example.com")
AUDIENCE = os.environ.get("WXLOGIN_AUDIENCE", "wxlogin")
JWKS_URL = os.environ.get("WXLOGIN_JWKS_URL", f"{ISSUER}/.well-known/jwks.json")

# One client for the process: it caches the key set for 5 minutes, and a token whose kid is not in
# it (wxlogin rotated its key) fetches the set again, at most once every 10 seconds.
jwks = jwt.PyJWKClient(JWKS_URL, lifespan=300, cooldown_duration=10, timeout=5)
ALGORITHMS = ["ES256", "EdDSA"]  # never "none" or HS256


def verify_access_token(token: str) -> dict:
    """The claims of a valid wxlogin access token; raises jwt.InvalidTokenError otherwise, and
    jwt.PyJWKClientConnectionError when the keys cannot be fetched (answer 503, not 401)."""
    header = jwt.get_unverified_header(token)
    if header.get("alg") not in ALGORITHMS:
        raise jwt.InvalidAlgorithmError("the token's algorithm is not allowed")
    # PyJWT does not look at the header's typ: an access token says at+jwt.
    if str(header.get("typ", "")).lower() != "at+jwt":
        raise jwt.InvalidTokenError("not an access token")
    key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key,
        algorithms=ALGORITHMS,
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway=30,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )


if __name__ == "__main__":
    # Reads one token a line and prints one verdict a line (JSON).
    for line in sys.stdin:
        try:
            claims = verify_access_token(line.strip())
            verdict = {"valid": True, "sub": claims["sub"], "sid": claims["sid"], "appid": claims["appid"]}
        except (jwt.InvalidTokenError, jwt.PyJWKClientError) as e:
            verdict = {"valid": False, "error": str(e)}
        print(json.dumps(verdict), flush=True)
