// The client-side checks of images given with a launch (src/attachments.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_IMAGES, MAX_IMAGE_BYTES, checkImage, markdownImages, defaultName, formatBytes, isInside, mimeFromName, sniffMime, toBase64, toLaunchAttachments, withImages } from '../src/attachments';
import type { LaunchFlowParams } from '../src/protocol';

const PNG = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
const JPEG = Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0, 16]);
const GIF = new TextEncoder().encode('GIF89a\x01\x00');
const WEBP = new TextEncoder().encode('RIFF\x10\x00\x00\x00WEBPVP8 ');
const BMP = new TextEncoder().encode('BM\x36\x00\x00\x00');
const SVG = new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg"/>');

test('the four image types are told by their bytes, others are not images', () => {
  assert.equal(sniffMime(PNG), 'image/png');
  assert.equal(sniffMime(JPEG), 'image/jpeg');
  assert.equal(sniffMime(GIF), 'image/gif');
  assert.equal(sniffMime(WEBP), 'image/webp');
  assert.equal(sniffMime(BMP), null);
  assert.equal(sniffMime(SVG), null);
  assert.equal(sniffMime(new Uint8Array()), null);
  assert.equal(mimeFromName('Shot.JPEG'), 'image/jpeg');
  assert.equal(mimeFromName('notes.txt'), null);
});

test('checkImage accepts the four types and takes the type from the bytes', () => {
  assert.deepEqual(checkImage('a.png', PNG, 100), { ok: true, mimeType: 'image/png' });
  assert.deepEqual(checkImage('clipboard', WEBP, 100), { ok: true, mimeType: 'image/webp' });
  assert.deepEqual(checkImage('b.gif', GIF, 100), { ok: true, mimeType: 'image/gif' });
});

test('checkImage refuses other types, mislabelled files, big files and one image too many, each saying what to do', () => {
  const bmp = checkImage('diagram.bmp', BMP, 100);
  assert.equal(bmp.ok, false);
  assert.match((bmp as { message: string }).message, /diagram\.bmp is not a PNG, JPEG, GIF or WebP image \(\.bmp\).*Convert it/);
  const svg = checkImage('ui.svg', SVG, 100);
  assert.equal(svg.ok, false);
  const lie = checkImage('photo.png', JPEG, 100);
  assert.equal(lie.ok, false);
  assert.match((lie as { message: string }).message, /named \.png but its content is JPEG/);
  const big = checkImage('huge.png', PNG, MAX_IMAGE_BYTES + 1);
  assert.equal(big.ok, false);
  assert.match((big as { message: string }).message, /the limit is 7\.1 MB per image/);
  assert.equal(checkImage('ok.png', PNG, MAX_IMAGE_BYTES).ok, true);
  const many = checkImage('six.png', PNG, 10, MAX_IMAGES);
  assert.equal(many.ok, false);
  assert.match((many as { message: string }).message, /At most 5 images per run/);
});

test('a workspace file is sent as a path relative to the root; the rest as data', () => {
  const imgs = [
    { name: 'a.png', mimeType: 'image/png', bytes: 3, data: 'AAA=', path: '/work/project/docs/a.png' },
    { name: 'b.png', mimeType: 'image/png', bytes: 3, data: 'BBB=', path: '/tmp/b.png' },
    { name: 'pasted-1.png', mimeType: 'image/png', bytes: 3, data: 'CCC=' },
  ];
  assert.deepEqual(toLaunchAttachments(imgs, '/work/project/'), [
    { path: 'docs/a.png' },
    { name: 'b.png', mimeType: 'image/png', data: 'BBB=' },
    { name: 'pasted-1.png', mimeType: 'image/png', data: 'CCC=' },
  ]);
  assert.deepEqual(toLaunchAttachments(imgs.slice(0, 1), undefined), [{ name: 'a.png', mimeType: 'image/png', data: 'AAA=' }]);
  assert.equal(isInside('/work/project', '/work/project-other/x.png'), false);
  assert.equal(isInside('C:\\w\\p', 'C:\\w\\p\\x.png'), true);
});

test('withImages adds attachments (and visionModel only with images and the toggle on)', () => {
  const base = (): LaunchFlowParams => ({ flow: 'f', input: { question: 'q' } });
  assert.deepEqual(withImages(base(), [], true), base());
  assert.deepEqual(withImages(base(), [{ path: 'a.png' }], false), { ...base(), attachments: [{ path: 'a.png' }] });
  assert.deepEqual(withImages(base(), [{ path: 'a.png' }], true), { ...base(), attachments: [{ path: 'a.png' }], visionModel: true });
});

test('small helpers: base64 without Buffer, names for pasted images, sizes', () => {
  const bytes = Uint8Array.from({ length: 70000 }, (_, i) => i % 256);
  assert.equal(toBase64(bytes), Buffer.from(bytes).toString('base64'));
  assert.equal(defaultName('image/jpeg', 2), 'pasted-2.jpg');
  assert.equal(defaultName('image/webp', 1), 'pasted-1.webp');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(48213), '47 KB');
  assert.equal(formatBytes(2 * 1024 * 1024), '2.0 MB');
});

test('a saved Markdown report refers to each image in a folder beside it, names made safe and unique', () => {
  const a = (id: string, name: string, mimeType = 'image/png') => ({ attachmentId: id, name, mimeType, width: 4, height: 3 });
  assert.deepEqual(markdownImages([], 'r.images'), { markdown: '', files: [] });
  const { markdown, files } = markdownImages([a('i1', 'layout.png'), a('i2', 'layout.png'), a('i3', '../evil name.jpeg', 'image/jpeg')], 'boo-code-review-1234.images');
  assert.deepEqual(files, [
    { attachmentId: 'i1', relPath: 'boo-code-review-1234.images/layout.png' },
    { attachmentId: 'i2', relPath: 'boo-code-review-1234.images/layout-2.png' },
    { attachmentId: 'i3', relPath: 'boo-code-review-1234.images/_evil_name.jpg' },
  ]);
  assert.match(markdown, /^\n## Attached images\n/);
  assert.match(markdown, /!\[layout\.png\]\(boo-code-review-1234\.images\/layout\.png\)/);
  assert.match(markdown, /`layout\.png` — 4×3 px \(attachment `i2`\)/);
  assert.ok(!files.some((f) => f.relPath.includes('..')), 'never outside the folder');
});
