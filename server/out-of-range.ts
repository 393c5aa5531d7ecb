/**
 * Which int64 field of a request holds a value this server cannot take. The generated decoders
 * (ts-proto, forceLong=number) refuse an int64 beyond ±(2^53-1) with a bare "Value is larger than
 * Number.MAX_SAFE_INTEGER" that names no field. A body they refuse is decoded again here, with
 * int64s kept whole as strings, and walked with the message's descriptor to find the field, so
 * the caller is told which one (`on_hand`, `items[2].quantity`) like any other bad field.
 * Runs only for bodies that failed to decode: nothing on the path of a good request.
 */

/** A field of a message descriptor, as @grpc/proto-loader gives it. */
export interface FieldDescriptor {
  readonly name: string;
  readonly type: string;
  readonly typeName: string;
  readonly label: string;
}

/** Finds a message's fields by the message's full name ('inventory.v1.LineItem'). */
export type MessageFields = (fullName: string) => readonly FieldDescriptor[] | undefined;

export interface OutOfRange {
  /** The field's path, e.g. `on_hand` or `items[2].quantity`. */
  readonly field: string;
  /** The value as sent, in decimal. */
  readonly value: string;
}

const INT64_TYPES = new Set(['TYPE_INT64', 'TYPE_UINT64', 'TYPE_SINT64', 'TYPE_FIXED64', 'TYPE_SFIXED64']);
const MAX = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * The first int64 field of `message` (decoded with longs as decimal strings, field names as in the
 * .proto) whose value is beyond ±(2^53-1), or undefined. `fullName` is the message's type.
 */
export function findOutOfRange(message: Readonly<Record<string, unknown>>, fullName: string, fields: MessageFields, prefix = ''): OutOfRange | undefined {
  for (const f of fields(fullName) ?? []) {
    const value = message[f.name];
    if (value === undefined || value === null) continue;
    const repeated = f.label === 'LABEL_REPEATED' && Array.isArray(value);
    const values: unknown[] = repeated ? value : [value];
    for (let i = 0; i < values.length; i++) {
      const path = `${prefix}${f.name}${repeated ? `[${i}]` : ''}`;
      const v = values[i];
      if (INT64_TYPES.has(f.type) && beyondSafe(v)) return { field: path, value: String(v) };
      if (f.type === 'TYPE_MESSAGE' && typeof v === 'object' && v !== null) {
        const found = findOutOfRange(v as Record<string, unknown>, resolveType(f.typeName, fullName), fields, `${path}.`);
        if (found) return found;
      }
    }
  }
  return undefined;
}

function beyondSafe(value: unknown): boolean {
  if (typeof value !== 'string' && typeof value !== 'number') return false;
  try {
    const n = BigInt(value);
    return n > MAX || n < -MAX;
  } catch {
    return false;
  }
}

/** A field's type name (relative, as proto-loader gives it, or fully qualified) as a full name, in the package of `within`. */
function resolveType(typeName: string, within: string): string {
  if (typeName.startsWith('.')) return typeName.slice(1);
  if (typeName.includes('.')) return typeName;
  return `${within.slice(0, within.lastIndexOf('.') + 1)}${typeName}`;
}
