/** Where the repository and its build are, seen from the compiled bench (dist/bench/*.js). */
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const DIST = path.join(ROOT, 'dist');
