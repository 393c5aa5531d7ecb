import { pairs } from '../allocator/stream-group';

/**
 * The fields of one ledger stream record (see allocator/lua/includes/ledger.lua). The scripts write
 * one stream field, `m`, holding a JSON object of strings; a record written by hand (or by an older
 * release) may instead spread its fields over the stream entry: [name, value, name, value, ...].
 * Both read the same. A value that is not a string (a bug upstream) is kept as its JSON text, so
 * that the writer's checks name it; a payload that is not a JSON object answers why, with the raw
 * text, instead of fields.
 */
export type RecordFields = { readonly fields: Record<string, string> } | { readonly problem: string; readonly raw: string };

export function recordFields(flat: readonly unknown[]): RecordFields {
  if (flat.length === 2 && flat[0] === 'm') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(String(flat[1]));
    } catch {
      return { problem: 'field m is not JSON', raw: String(flat[1]) };
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return { problem: 'field m is not a JSON object', raw: String(flat[1]) };
    const fields = parsed as Record<string, unknown>;
    for (const key in fields) if (typeof fields[key] !== 'string') fields[key] = JSON.stringify(fields[key]);
    return { fields: fields as Record<string, string> };
  }
  const fields = pairs(flat);
  for (const key in fields) fields[key] = String(fields[key]);
  return { fields: fields as Record<string, string> };
}
