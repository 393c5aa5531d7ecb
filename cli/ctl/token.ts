import { readOptionFile, usageFailure } from './exit-codes';

/** Where the admin token may come from, in the order they are tried. */
export interface TokenSources {
  /** `--token-file` (or INVENTORY_ADMIN_TOKEN_FILE): a file holding the token. */
  readonly tokenFile?: string;
  readonly env: NodeJS.ProcessEnv;
}

/**
 * The bearer token for AdminService: from `--token-file`, else INVENTORY_ADMIN_TOKEN, else
 * ADMIN_TOKEN (the server's own variable, so one environment serves both). Never from a flag's
 * value, which would land in the shell's history. None at all is a usage error naming the ways.
 */
export function adminToken({ tokenFile, env }: TokenSources): string {
  if (tokenFile !== undefined) {
    const token = readOptionFile('--token-file', tokenFile).toString('utf8').trim();
    if (token === '') throw usageFailure(`--token-file ${tokenFile}: the file is empty`);
    return token;
  }
  const token = env.INVENTORY_ADMIN_TOKEN?.trim() || env.ADMIN_TOKEN?.trim();
  if (!token) {
    throw usageFailure(
      'no admin token: set INVENTORY_ADMIN_TOKEN (the local server of `npm start` uses dev-admin-token), or pass --token-file FILE',
    );
  }
  return token;
}
