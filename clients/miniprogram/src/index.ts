export { createAuthClient } from './client';
export type {
  AuthClient,
  AuthClientOptions,
  AuthEvents,
  AuthUser,
  LoginRequiredContext,
  PhoneEventDetail,
  RequestOptions,
  UploadOptions,
} from './client';
export { AuthError } from './errors';
export type { AuthErrorDetails } from './errors';
export { taroPlatform, uniPlatform, wxPlatform } from './platform';
export type { MiniProgramApi, Platform, PlatformRequest, PlatformResponse, PlatformUpload } from './platform';
