/** Which change kinds send `subject.deprovisioned`: /v1 deactivation and deletion, SCIM deprovisioning and deletion. */
import { expect, it } from 'vitest';
import { deprovisionedBy } from '../../src/delivery/record-events.ts';

it('names the subject of every deprovisioning kind, and nothing for other kinds', () => {
  for (const kind of ['subject.deactivate', 'subject.delete', 'scim.user.deprovision', 'scim.user.delete']) expect(deprovisionedBy(kind, { id: 'alice' }), kind).toEqual(['alice']);
  for (const kind of ['subject.activate', 'scim.user.update', 'membership.remove', undefined]) expect(deprovisionedBy(kind, { id: 'alice' }), String(kind)).toEqual([]);
  expect(deprovisionedBy('subject.delete', null)).toEqual([]);
});
