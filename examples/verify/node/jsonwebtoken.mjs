// examples/verify/node/jsonwebtoken.mjs
import { createInterface } from 'node:readline';
import jwt from 'jsonwebtoken';
import jwksRsa from 'jwks-rsa';

const ISSUER = process.env.WXLOGIN_ISSUER ?? 'https://login.example.com';
const AUDIENCE = process.env.WXLOGIN_AUDIENCE ?? 'wxlogin';
const JWKS_URL = process.env.WXLOGIN_JWKS_URL ?? `${ISSUER}/.well-known/jwks.json`;

// Keys are cached by `kid` for 5 minutes; an unknown `kid` (a rotated key) fetches the set again,
// at most 10 times a minute.
const keys = jwksRsa({
  jwksUri: JWKS_URL,
  cache: true,
  cacheMaxAge: 5 * 60_000,
  rateLimit: true,
  jwksRequestsPerMinute: 10,
  timeout: 5_000,
});

function getKey(header, callback) {
  if (!header.kid) return callback(new Error('the token has no kid'));
  keys.getSigningKey(header.kid).then((key) => callback(null, key.getPublicKey()), callback);
}

// jsonwebtoken cannot verify EdDSA: keep wxlogin on its default ES256 (tokens.algorithm).
export function verifyAccessToken(token) {
  return new Promise((resolve, reject) => {
    const options = {
      algorithms: ['ES256'],
      issuer: ISSUER,
      audience: AUDIENCE,
      clockTolerance: 30,
      complete: true,
    };
    jwt.verify(token, getKey, options, (err, decoded) => {
      if (err) return reject(err);
      // jsonwebtoken does not look at the header's typ: an access token says at+jwt.
      if (decoded.header.typ?.toLowerCase() !== 'at+jwt') return reject(new Error('not an access token'));
      if (!decoded.payload.sub || !decoded.payload.sid) return reject(new Error('missing claims'));
      resolve(decoded.payload);
    });
  });
}

// Reads one token a line and prints one verdict a line (JSON).
for await (const line of createInterface({ input: process.stdin })) {
  try {
    const claims = await verifyAccessToken(line.trim());
    console.log(JSON.stringify({ valid: true, sub: claims.sub, sid: claims.sid, appid: claims.appid }));
  } catch (err) {
    console.log(JSON.stringify({ valid: false, error: err.message }));
  }
}
