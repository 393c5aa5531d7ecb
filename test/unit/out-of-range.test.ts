import assert from 'node:assert/strict';
import { FieldDescriptor, findOutOfRange } from '../../server/out-of-range';

const field = (name: string, type: string, label = 'LABEL_OPTIONAL', typeName = ''): FieldDescriptor => ({ name, type, label, typeName });
const messages: Record<string, FieldDescriptor[]> = {
  'shop.v1.Order': [field('order_id', 'TYPE_STRING'), field('items', 'TYPE_MESSAGE', 'LABEL_REPEATED', 'Item'), field('total', 'TYPE_INT64')],
  'shop.v1.Item': [field('sku_id', 'TYPE_STRING'), field('units', 'TYPE_SINT64'), field('note', 'TYPE_MESSAGE', 'LABEL_OPTIONAL', '.shop.v1.Note')],
  'shop.v1.Note': [field('seen', 'TYPE_UINT64')],
};
const fields = (name: string) => messages[name];

describe('finding the int64 field a request holds out of range', () => {
  it('names a top-level field, beyond either end', () => {
    assert.deepEqual(findOutOfRange({ total: '9223372036854775807' }, 'shop.v1.Order', fields), { field: 'total', value: '9223372036854775807' });
    assert.deepEqual(findOutOfRange({ total: '-9223372036854775808' }, 'shop.v1.Order', fields), { field: 'total', value: '-9223372036854775808' });
    assert.deepEqual(findOutOfRange({ total: '9007199254740992' }, 'shop.v1.Order', fields)?.field, 'total');
  });

  it('takes the whole safe range, and leaves strings that only look like numbers alone', () => {
    assert.equal(findOutOfRange({ total: '9007199254740991', order_id: '99999999999999999999' }, 'shop.v1.Order', fields), undefined);
    assert.equal(findOutOfRange({ total: '-9007199254740991' }, 'shop.v1.Order', fields), undefined);
    assert.equal(findOutOfRange({}, 'shop.v1.Order', fields), undefined);
  });

  it('walks repeated and nested messages, relative and qualified type names, with the path', () => {
    const order = { items: [{ sku_id: 'a', units: '1' }, { sku_id: 'b', units: '1', note: { seen: '18446744073709551615' } }] };
    assert.deepEqual(findOutOfRange(order, 'shop.v1.Order', fields), { field: 'items[1].note.seen', value: '18446744073709551615' });
    assert.deepEqual(findOutOfRange({ items: [{ units: '-9007199254740993' }] }, 'shop.v1.Order', fields)?.field, 'items[0].units');
  });

  it('finds nothing in a message it has no descriptor for', () => {
    assert.equal(findOutOfRange({ total: '9223372036854775807' }, 'other.Unknown', fields), undefined);
  });
});
