// Images given with a launch (issue 16): what the client checks before it sends them.
// Pure (no vscode, no DOM, no Node): the extension host, the launcher webview and the
// unit tests share it. The server checks again (it sniffs the bytes and may refuse with
// -32602); these checks only spare the user a round trip and say early what is wrong.

import type { LaunchAttachment } from './protocol';

/** The image types boo accepts, by the extensions a file of that type may have. */
export const IMAGE_TYPES: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
};
export const ACCEPTED_MIME = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];
/** The largest image the server takes: 9 900 000 characters of base64 (what qwen forwards). */
export const MAX_IMAGE_BYTES = 7_425_000;
/** At most this many images per run. */
export const MAX_IMAGES = 5;

/** An image the user picked, dropped or pasted, ready to show and to send. */
export interface PendingImage {
  name: string;
  mimeType: string;
  bytes: number;
  /** base64 of the file (for the thumbnail, and sent unless `path` is). */
  data: string;
  /** A file of the workspace: sent as `{ path }` (the server reads it). */
  path?: string;
}

export type ImageCheck = { ok: true; mimeType: string } | { ok: false; message: string };

/** The image type the file's extension names, or null. */
export function mimeFromName(name: string): string | null {
  const m = /\.([A-Za-z0-9]+)$/.exec(name.trim());
  return m ? IMAGE_TYPES[m[1].toLowerCase()] ?? null : null;
}

/** The image type the first bytes show (PNG, JPEG, GIF, WebP), or null. */
export function sniffMime(head: Uint8Array): string | null {
  const at = (i: number, ...b: number[]) => b.every((x, k) => head[i + k] === x);
  if (at(0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return 'image/png';
  if (at(0, 0xff, 0xd8, 0xff)) return 'image/jpeg';
  if (at(0, 0x47, 0x49, 0x46, 0x38) && (head[4] === 0x37 || head[4] === 0x39) && head[5] === 0x61) return 'image/gif';
  if (at(0, 0x52, 0x49, 0x46, 0x46) && at(8, 0x57, 0x45, 0x42, 0x50)) return 'image/webp';
  return null;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

/**
 * Whether an image may be attached: its bytes must be PNG, JPEG, GIF or WebP (an
 * extension naming another image type than the content is refused, as the server
 * does), at most MAX_IMAGE_BYTES, and there must be room for it (`already` attached).
 */
export function checkImage(name: string, head: Uint8Array, size: number, already = 0): ImageCheck {
  const label = name || 'the image';
  const sniffed = sniffMime(head);
  if (!sniffed) {
    const ext = /\.([A-Za-z0-9]+)$/.exec(name)?.[1];
    return { ok: false, message: `${label} is not a PNG, JPEG, GIF or WebP image${ext ? ` (.${ext.toLowerCase()})` : ''}: boo attaches only those. Convert it (e.g. save as PNG) and attach it again.` };
  }
  const byName = mimeFromName(name);
  const ext = /\.([A-Za-z0-9]+)$/.exec(name)?.[1];
  if (ext && byName && byName !== sniffed) {
    return { ok: false, message: `${label} is named .${ext.toLowerCase()} but its content is ${sniffed.slice(6).toUpperCase()}: rename it to match its content and attach it again.` };
  }
  if (size > MAX_IMAGE_BYTES) {
    return { ok: false, message: `${label} is ${formatBytes(size)}: the limit is ${formatBytes(MAX_IMAGE_BYTES)} per image. Crop or compress it and attach it again.` };
  }
  if (already >= MAX_IMAGES) {
    return { ok: false, message: `At most ${MAX_IMAGES} images per run: remove one before adding ${label}.` };
  }
  return { ok: true, mimeType: sniffed };
}

/** A name for pasted or dropped data that has none (the clipboard gives "image.png"). */
export function defaultName(mimeType: string, n: number): string {
  const ext = mimeType === 'image/jpeg' ? 'jpg' : mimeType.replace(/^image\//, '') || 'png';
  return `pasted-${n}.${ext}`;
}

/** Whether `file` lies inside `root` (both absolute paths, either separator). */
export function isInside(root: string | undefined, file: string): boolean {
  if (!root) return false;
  const norm = (p: string) => p.replace(/\\/g, '/').replace(/\/+$/, '');
  const r = norm(root);
  const f = norm(file);
  return f.startsWith(r + '/');
}

/**
 * What a launch sends for each image: a file of the workspace as `{ path }` (relative to
 * the root; the server reads it), anything else (pasted, dropped, a file outside the
 * workspace) as `{ name, mimeType, data }`.
 */
export function toLaunchAttachments(images: PendingImage[], root: string | undefined): LaunchAttachment[] {
  return images.map((img) => {
    if (img.path && root && isInside(root, img.path)) {
      const r = root.replace(/\\/g, '/').replace(/\/+$/, '');
      return { path: img.path.replace(/\\/g, '/').slice(r.length + 1) };
    }
    return { name: img.name, mimeType: img.mimeType, data: img.data };
  });
}

/** base64 of bytes, without Node's Buffer (the webview has none). */
export function toBase64(bytes: Uint8Array): string {
  const CHUNK = 0x8000;
  let bin = '';
  for (let i = 0; i < bytes.length; i += CHUNK) bin += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  return btoa(bin);
}

/** A `data:` URL for a thumbnail. */
export function dataUrl(mimeType: string, data: string): string {
  return `data:${mimeType};base64,${data}`;
}

/** The file-name extension for an image type (for a temporary copy opened full size). */
export function extensionFor(mimeType: string): string {
  return mimeType === 'image/jpeg' ? 'jpg' : (ACCEPTED_MIME.includes(mimeType) ? mimeType.slice(6) : 'bin');
}

/** What the launch params get for images: nothing without any; `visionModel` only with some. */
export function withImages<T extends { attachments?: LaunchAttachment[]; visionModel?: boolean }>(params: T, images: LaunchAttachment[], vision: boolean): T {
  if (!images.length) return params;
  params.attachments = images;
  if (vision) params.visionModel = true;
  return params;
}

/** A run image as the Markdown export refers to it: the file written beside the report. */
export interface ExportedImage {
  attachmentId: string;
  /** Relative to the Markdown file: `<folder>/<file name>`. */
  relPath: string;
}

/**
 * The images of a run for a saved Markdown report: one file each in `folder` (a
 * folder beside the report), named after the image (made safe and unique), and a
 * section of Markdown image references to append to the report.
 */
export function markdownImages(attachments: { attachmentId: string; name: string; mimeType: string; width: number; height: number }[], folder: string): { markdown: string; files: ExportedImage[] } {
  if (!attachments.length) return { markdown: '', files: [] };
  const used = new Set<string>();
  const files: ExportedImage[] = [];
  const lines = ['', '## Attached images', ''];
  for (const a of attachments) {
    const ext = extensionFor(a.mimeType);
    const stem = a.name.replace(/\.[A-Za-z0-9]+$/, '').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '').slice(0, 80) || 'image';
    let file = `${stem}.${ext}`;
    for (let n = 2; used.has(file.toLowerCase()); n++) file = `${stem}-${n}.${ext}`;
    used.add(file.toLowerCase());
    const relPath = `${folder}/${file}`;
    files.push({ attachmentId: a.attachmentId, relPath });
    const alt = a.name.replace(/[[\]\\]/g, '');
    lines.push(`![${alt}](${encodeURI(relPath)})`, '', `\`${a.name}\` — ${a.width}×${a.height} px (attachment \`${a.attachmentId}\`)`, '');
  }
  return { markdown: lines.join('\n'), files };
}
