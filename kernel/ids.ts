/**
 * The ids every edge accepts (order, SKU, request, message ids): they end up inside Redis keys, etcd
 * paths and ledger event ids, so a safe set, and no `{`/`}` (Redis hash tags).
 */
export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
export const ID_RULE = 'must be 1-128 characters from A-Z a-z 0-9 . _ : -';
