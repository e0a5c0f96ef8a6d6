import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ChannelFrame, FrameReader } from '../../src/functions/runtimes/runtime-channel.js';

const frames = (maxBody = 1024) => {
  const got: ChannelFrame[] = [];
  const broken: string[] = [];
  const reader = new FrameReader(
    maxBody,
    (f) => got.push(f),
    (why) => broken.push(why),
  );
  return { reader, got, broken };
};
const wire = (...parts: string[]) => Buffer.from(parts.join(''));

test('frames are read whole, however the bytes are cut, several to a chunk', () => {
  const bytes = wire('{"op":"next"}\n', '{"op":"response","id":"a","length":8}\n', '{"é":1}', '{"op":"next"}\n');
  for (const cut of [1, 3, 7, bytes.length]) {
    const { reader, got, broken } = frames();
    for (let i = 0; i < bytes.length; i += cut) reader.push(bytes.subarray(i, i + cut));
    assert.deepEqual(broken, []);
    assert.deepEqual(
      got.map((f) => [f.header.op, f.body?.toString('utf8') ?? null]),
      [
        ['next', ''],
        ['response', '{"é":1}'],
        ['next', ''],
      ],
      `cut every ${cut} bytes`,
    );
  }
});

test('a body over the limit is read past and given as null; the next frame is read', () => {
  const { reader, got } = frames(4);
  reader.push(wire('{"op":"response","id":"a","length":6}\n', 'abc'));
  reader.push(wire('def', '{"op":"next"}\n'));
  assert.deepEqual(
    got.map((f) => [f.header.op, f.body]),
    [
      ['response', null],
      ['next', Buffer.alloc(0)],
    ],
  );
});

test('a header that is not JSON, or has no byte length, breaks the channel once', () => {
  for (const bad of ['not json\n', '{"length":-1}\n', '[1]\n', '"x"\n']) {
    const { reader, got, broken } = frames();
    reader.push(wire(bad, '{"op":"next"}\n'));
    reader.push(wire('{"op":"next"}\n'));
    assert.equal(got.length, 0, bad);
    assert.equal(broken.length, 1, bad);
  }
  const { reader, broken } = frames();
  reader.push(Buffer.alloc(70 * 1024, 'x'));
  assert.equal(broken.length, 1, 'a header line over 64 KiB');
});
