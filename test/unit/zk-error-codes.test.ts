import zookeeper from 'node-zookeeper-client';
import { describe, expect, it } from 'vitest';
import '../../src/adapters/zookeeper.js';

type Made = Error & { getCode(): number; getName(): string };
const create = (code: number) =>
  (zookeeper.Exception as unknown as { create(c: number, p?: string): Made }).create(code, '/p');

describe('server error codes newer than node-zookeeper-client', () => {
  it('turns SESSION_MOVED into a connection loss for the one request, instead of a throw', () => {
    const error = create(-118);
    expect(error.getName()).toBe('CONNECTION_LOSS');
    expect(error.message).toContain('SESSION_MOVED, code -118');
  });

  it('turns other unknown codes into a system error naming them', () => {
    expect(create(-125).getName()).toBe('SYSTEM_ERROR');
    expect(create(-125).message).toContain('QUOTA_EXCEEDED');
    expect(create(-999).message).toContain('an unknown error, code -999');
  });

  it('leaves the codes the library knows alone', () => {
    expect(create(-101).getName()).toBe('NO_NODE');
    expect(create(-101).message).not.toContain('server answered');
  });
});
