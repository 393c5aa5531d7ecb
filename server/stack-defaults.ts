import { readFileSync } from 'node:fs';
import path from 'node:path';

/** config/stack.env of this checkout (compiled code runs from dist/server/). */
export const STACK_ENV_FILE = path.resolve(__dirname, '..', '..', 'config', 'stack.env');

/** The addresses of the local stack, the defaults of the variables that name a server. */
export interface StackDefaults {
  readonly REDIS_NODES: string;
  readonly ETCD_ENDPOINTS: string;
  readonly MYSQL_URL: string;
  readonly AMQP_URL: string;
}

/**
 * Reads config/stack.env (KEY=VALUE lines, # comments), the one file that writes the local stack's
 * addresses down; scripts/stack.sh reads the same file.
 */
export function stackDefaults(file = STACK_ENV_FILE): StackDefaults {
  const values: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const match = /^\s*([A-Z_]+)=(.*)$/.exec(line);
    if (match) values[match[1]] = match[2].trim();
  }
  for (const name of ['REDIS_NODES', 'ETCD_ENDPOINTS', 'MYSQL_URL', 'AMQP_URL']) {
    if (!values[name]) throw new Error(`${file}: ${name} is missing`);
  }
  return values as unknown as StackDefaults;
}
