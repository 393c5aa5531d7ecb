import { ChannelCredentials, credentials } from '@grpc/grpc-js';
import { readOptionFile, usageFailure } from './exit-codes';

/** The TLS options of the command line; any of them turns TLS on. */
export interface TlsOptions {
  /** `--tls`: TLS with the system's trusted roots. */
  readonly tls?: boolean;
  /** `--ca FILE`: PEM roots to trust instead (a private CA, a self-signed server). */
  readonly ca?: string;
  /** `--cert FILE` / `--key FILE`: a client certificate, for a server or proxy that asks for one. */
  readonly cert?: string;
  readonly key?: string;
}

/** Plaintext unless a TLS option is given; a file that cannot be read is a usage error naming its option. */
export function channelCredentials(options: TlsOptions): ChannelCredentials {
  const { tls, ca, cert, key } = options;
  if (!tls && ca === undefined && cert === undefined && key === undefined) return credentials.createInsecure();
  if ((cert === undefined) !== (key === undefined)) throw usageFailure('--cert and --key go together: give both or neither');
  return credentials.createSsl(
    ca === undefined ? null : readOptionFile('--ca', ca),
    key === undefined ? null : readOptionFile('--key', key),
    cert === undefined ? null : readOptionFile('--cert', cert),
  );
}

