import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type Redis from 'ioredis';

/** allocator/lua of this checkout (compiled code runs from dist/allocator/). */
export const LUA_DIR = path.resolve(__dirname, '..', '..', 'allocator', 'lua');

/** One Lua script: its name, key count (from the file name `<name>-<keys>.lua`) and source. */
export interface LuaScript {
  readonly name: string;
  readonly numberOfKeys: number;
  readonly source: string;
  /** The ioredis command name, versioned by content so two releases can share a Redis. */
  readonly command: string;
}

/**
 * Reads every script of allocator/lua, resolving `-- @include <name>` lines with the files of
 * lua/includes (shared helpers), the BullMQ way. An include may include others; each is pasted
 * once per script, where it is first named.
 */
export function loadScripts(dir = LUA_DIR): Map<string, LuaScript> {
  const scripts = new Map<string, LuaScript>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.lua')).sort()) {
    const match = /^(.+)-(\d+)\.lua$/.exec(file);
    if (!match) throw new Error(`${file}: a script is named <name>-<number of keys>.lua`);
    const [, name, keys] = match;
    const source = resolveIncludes(readFileSync(path.join(dir, file), 'utf8'), path.join(dir, 'includes'), new Set());
    const version = createHash('sha1').update(source).digest('hex').slice(0, 8);
    scripts.set(name, { name, numberOfKeys: Number(keys), source, command: `inv_${name.replace(/-/g, '_')}_${version}` });
  }
  return scripts;
}

function resolveIncludes(source: string, includesDir: string, seen: Set<string>): string {
  return source.replace(/^-- @include (\S+)\s*$/gm, (_, include: string) => {
    if (seen.has(include)) return '';
    seen.add(include);
    return resolveIncludes(readFileSync(path.join(includesDir, `${include}.lua`), 'utf8'), includesDir, seen);
  });
}

/** Registers every script on a client with defineCommand: EVALSHA, falling back to EVAL on NOSCRIPT. */
export function defineScripts(client: Redis, scripts: Map<string, LuaScript>): void {
  for (const script of scripts.values()) {
    if (!(script.command in client)) {
      client.defineCommand(script.command, { numberOfKeys: script.numberOfKeys, lua: script.source });
    }
  }
}

/** Runs a defined script. Keys first, then arguments, as the script's header lists them. */
export function runScript<T = unknown>(client: Redis, script: LuaScript, keys: string[], args: Array<string | number>): Promise<T> {
  if (keys.length !== script.numberOfKeys) {
    throw new Error(`${script.name} takes ${script.numberOfKeys} keys, got ${keys.length}`);
  }
  const command = (client as unknown as Record<string, (...a: Array<string | number>) => Promise<T>>)[script.command];
  return command.call(client, ...keys, ...args);
}
