import { InvalidArgumentError } from 'commander';
import { ID_PATTERN, ID_RULE } from '../../kernel/ids';

/**
 * Parsers for commander arguments and options. A bad value becomes commander's usage error, which
 * names the argument or option it came from (exit code 2).
 */

/** A whole number within [min, max]; `what` describes it in the error. */
export function wholeNumber(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const n = /^-?\d+$/.test(value.trim()) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(max === Number.MAX_SAFE_INTEGER ? `must be a whole number >= ${min}` : `must be a whole number from ${min} to ${max}`);
    }
    return n;
  };
}

/** A signed whole number other than 0 (a stock delta). */
export function nonZeroDelta(value: string): number {
  const n = wholeNumber(-Number.MAX_SAFE_INTEGER)(value);
  if (n === 0) throw new InvalidArgumentError('must not be 0');
  return n;
}

/** An id by the API's rule (SKU, order, request and partition ids). */
export function id(value: string): string {
  if (!ID_PATTERN.test(value)) throw new InvalidArgumentError(ID_RULE);
  return value;
}

/** A variadic id argument: commander hands each value with the list so far. */
export function ids(value: string, previous: string[] = []): string[] {
  return [...previous, id(value)];
}

/** A gRPC target: host:port, or one with a scheme (dns:///name:port). */
export function target(value: string): string {
  if (!/^\S+:\d{1,5}$/.test(value)) throw new InvalidArgumentError('must be host:port (or a gRPC target such as dns:///name:port)');
  return value;
}

/** A comma-separated list of host:port (Redis nodes). */
export function addressList(value: string): string[] {
  return value.split(',').map((one) => {
    const trimmed = one.trim();
    if (!/^\S+:\d{1,5}$/.test(trimmed)) throw new InvalidArgumentError(`${JSON.stringify(trimmed)} must be host:port`);
    return trimmed;
  });
}
