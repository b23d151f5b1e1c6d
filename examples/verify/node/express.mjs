// examples/verify/node/express.mjs
import express from 'express';
import { createRemoteJWKSet, errors, jwtVerify } from 'jose';

const ISSUER = process.env.WXLOGIN_ISSUER ?? 'https://login.example.com';
const AUDIENCE = process.env.WXLOGIN_AUDIENCE ?? 'wxlogin';
const JWKS_URL = process.env.WXLOGIN_JWKS_URL ?? `${ISSUER}/.well-known/jwks.json`;

// One key set for the process. Keys are cached for 5 minutes; a token whose `kid` is not in the
// cache (wxlogin rotated its key) makes jose fetch the set again, at most once every 10 seconds.
const jwks = createRemoteJWKSet(new URL(JWKS_URL), {
  cacheMaxAge: 5 * 60_000,
  cooldownDuration: 10_000,
  timeoutDuration: 5_000,
});

async function verifyAccessToken(token) {
  const { payload } = await jwtVerify(token, jwks, {
    algorithms: ['ES256', 'EdDSA'], // never `none` or HS256
    typ: 'at+jwt',
    issuer: ISSUER,
    audience: AUDIENCE,
    requiredClaims: ['sub', 'sid', 'appid', 'exp', 'iat'],
    clockTolerance: 30, // seconds
  });
  return payload;
}

// The key set could not be fetched: not the token's fault, so 503 rather than a 401 that would
// send the client to log in again.
function keysUnavailable(err) {
  return !(err instanceof errors.JOSEError)
    || ['ERR_JOSE_GENERIC', 'ERR_JWKS_TIMEOUT', 'ERR_JWKS_INVALID'].includes(err.code);
}

async function requireUser(req, res, next) {
  const [scheme, token, extra] = (req.get('authorization') ?? '').split(' ');
  try {
    if (scheme?.toLowerCase() !== 'bearer' || !token || extra !== undefined) {
      throw new errors.JWTInvalid('send Authorization: Bearer <access_token>');
    }
    const claims = await verifyAccessToken(token);
    req.user = { id: claims.sub, sessionId: claims.sid, appid: claims.appid };
    next();
  } catch (err) {
    if (keysUnavailable(err)) {
      res.status(503).set('Retry-After', '5').json({ error: 'unavailable', message: 'try again later' });
    } else {
      res.status(401).set('WWW-Authenticate', 'Bearer error="invalid_token"')
        .json({ error: 'invalid_token', message: err.message });
    }
  }
}

const app = express();
app.get('/me', requireUser, (req, res) => res.json(req.user));

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
