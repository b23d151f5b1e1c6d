// examples/verify/node/koa.mjs
import Koa from 'koa';
import { createRemoteJWKSet, errors, jwtVerify } from 'jose';

const ISSUER = process.env.WXLOGIN_ISSUER ?? 'https://login.example.com';
const AUDIENCE = process.env.WXLOGIN_AUDIENCE ?? 'wxlogin';
const JWKS_URL = process.env.WXLOGIN_JWKS_URL ?? `${ISSUER}/.well-known/jwks.json`;

// Cached for 5 minutes; an unknown `kid` refetches, at most once every 10 seconds.
const jwks = createRemoteJWKSet(new URL(JWKS_URL), {
  cacheMaxAge: 5 * 60_000,
  cooldownDuration: 10_000,
  timeoutDuration: 5_000,
});

// Sets ctx.state.user, or answers 401 (bad token) or 503 (the keys could not be fetched).
async function requireUser(ctx, next) {
  const [scheme, token, extra] = ctx.get('authorization').split(' ');
  let claims;
  try {
    if (scheme.toLowerCase() !== 'bearer' || !token || extra !== undefined) {
      throw new errors.JWTInvalid('send Authorization: Bearer <access_token>');
    }
    ({ payload: claims } = await jwtVerify(token, jwks, {
      algorithms: ['ES256', 'EdDSA'],
      typ: 'at+jwt',
      issuer: ISSUER,
      audience: AUDIENCE,
      requiredClaims: ['sub', 'sid', 'appid', 'exp', 'iat'],
      clockTolerance: 30,
    }));
  } catch (err) {
    const unavailable = !(err instanceof errors.JOSEError)
      || ['ERR_JOSE_GENERIC', 'ERR_JWKS_TIMEOUT', 'ERR_JWKS_INVALID'].includes(err.code);
    if (unavailable) {
      ctx.status = 503;
      ctx.set('Retry-After', '5');
      ctx.body = { error: 'unavailable', message: 'try again later' };
    } else {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', 'Bearer error="invalid_token"');
      ctx.body = { error: 'invalid_token', message: err.message };
    }
    return;
  }
  ctx.state.user = { id: claims.sub, sessionId: claims.sid, appid: claims.appid };
  await next();
}

const app = new Koa();
app.use(requireUser); // every route below needs a user
app.use((ctx) => {
  if (ctx.path === '/me') ctx.body = ctx.state.user;
});

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});
