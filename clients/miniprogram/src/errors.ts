/** Extra facts an {@link AuthError} may carry. */
export interface AuthErrorDetails {
  /** The HTTP status, when the error came from an HTTP answer. */
  status?: number;
  /** The server's `request_id`, to find the request in its log. */
  requestId?: string;
  /** With `phone_required` and `registration_closed`: the ticket that `POST /v1/auth/wechat/register` takes. */
  loginTicket?: string;
  /** The underlying failure (a platform `fail` result, a hook's rejection). */
  cause?: unknown;
}

/**
 * Every failure of the client. `code` is the server's stable `error` code (`invalid_code`,
 * `invalid_grant`, `phone_required`, `registration_closed`, `phone_in_use`, `identity_conflict`,
 * ...) or one of the client's own: `network_error`, `login_failed`, `logged_out`, `login_cancelled`,
 * `login_required`, `phone_denied`, `http_error`.
 */
export class AuthError extends Error {
  readonly code: string;
  declare readonly status?: number;
  declare readonly requestId?: string;
  declare readonly loginTicket?: string;
  declare readonly cause?: unknown;

  constructor(code: string, message: string, details?: AuthErrorDetails) {
    super(message);
    this.name = 'AuthError';
    this.code = code;
    Object.assign(this, details);
  }
}

/** Wraps a platform failure (`{ errMsg }`, an Error, anything) unless it already is an AuthError. */
export function wrapError(error: unknown, code: string): AuthError {
  if (error instanceof AuthError) return error;
  const e = error as { errMsg?: unknown; message?: unknown } | null;
  const text = e && (e.errMsg || e.message);
  return new AuthError(code, typeof text === 'string' ? text : String(error), { cause: error });
}
