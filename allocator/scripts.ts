import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

/** allocator/lua of this checkout (compiled code runs from dist/allocator/). */
export const LUA_DIR = path.resolve(__dirname, '..', '..', 'allocator', 'lua');

/** One Lua script: its name, key count (from the file name `<name>-<keys>.lua`) and source. */
export interface LuaScript {
  readonly name: string;
  readonly numberOfKeys: number;
  readonly source: string;
  /** SHA1 of the source: its name for EVALSHA, so two releases can share a Redis. */
  readonly sha: string;
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
    const sha = createHash('sha1').update(source).digest('hex');
    scripts.set(name, { name, numberOfKeys: Number(keys), source, sha });
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
